//! Terraform version constraints (`">= 0.66"`, `"~> 0.111.0"`, `"= 0.111.1"`), enough to decide
//! whether a provider constraint is an exact pin, a bare minimum, and whether it admits a version.
//!
//! Why here and not a semver crate: Terraform's syntax is not Cargo's (`~>` instead of `~`/`^`,
//! a bare version means exact, missing segments are zeros), and the few rules fit on a page.

use std::cmp::Ordering;
use std::fmt;

/// A version: numeric segments (missing ones count as 0) and an optional pre-release tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// The segments as written (1–3 of them usually); comparisons pad with zeros.
    pub segments: Vec<u64>,
    pub pre: Option<String>,
}

impl Version {
    pub fn parse(text: &str) -> Option<Version> {
        let text = text.trim().trim_start_matches('v');
        // Build metadata never affects precedence.
        let text = text.split_once('+').map_or(text, |(v, _)| v);
        let (core, pre) = match text.split_once('-') {
            Some((c, p)) if !p.is_empty() => (c, Some(p.to_string())),
            Some(_) => return None,
            None => (text, None),
        };
        let segments = core
            .split('.')
            .map(|s| s.parse::<u64>().ok())
            .collect::<Option<Vec<_>>>()?;
        (!segments.is_empty() && segments.len() <= 3).then_some(Version { segments, pre })
    }

    fn seg(&self, i: usize) -> u64 {
        self.segments.get(i).copied().unwrap_or(0)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        for i in 0..3 {
            match self.seg(i).cmp(&other.seg(i)) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        // A pre-release sorts before its release.
        match (&self.pre, &other.pre) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(a), Some(b)) => a.cmp(b),
        }
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s: Vec<String> = self.segments.iter().map(u64::to_string).collect();
        f.write_str(&s.join("."))?;
        if let Some(p) = &self.pre {
            write!(f, "-{p}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    /// `~>`: only the right-most written segment may increase.
    Pessimistic,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Pessimistic => "~>",
        }
    }
}

/// One comparison of a constraint string (`>= 0.66`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    pub op: Op,
    pub version: Version,
}

impl Clause {
    pub fn admits(&self, v: &Version) -> bool {
        let c = &self.version;
        match self.op {
            Op::Eq => v == c || v.cmp(c) == Ordering::Equal,
            Op::Ne => v.cmp(c) != Ordering::Equal,
            Op::Gt => v > c,
            Op::Ge => v >= c,
            Op::Lt => v < c,
            Op::Le => v <= c,
            Op::Pessimistic => {
                // ~> 1.2.3 → >= 1.2.3, < 1.3.0;  ~> 1.2 → >= 1.2, < 2.0;  ~> 1 → >= 1, < 2.
                let n = c.segments.len();
                let keep = if n == 1 { 0 } else { n - 2 };
                let mut upper: Vec<u64> = c.segments[..=keep].to_vec();
                upper[keep] += 1;
                let upper = Version {
                    segments: upper,
                    pre: None,
                };
                v >= c && *v < upper
            }
        }
    }
}

/// A whole constraint string: clauses joined by commas, all of which must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    pub clauses: Vec<Clause>,
}

impl Constraint {
    pub fn parse(text: &str) -> Result<Constraint, String> {
        let mut clauses = Vec::new();
        for part in text.split(',') {
            let part = part.trim();
            let (op, rest) = [
                ("~>", Op::Pessimistic),
                (">=", Op::Ge),
                ("<=", Op::Le),
                ("!=", Op::Ne),
                ("=", Op::Eq),
                (">", Op::Gt),
                ("<", Op::Lt),
            ]
            .iter()
            .find_map(|(s, op)| part.strip_prefix(s).map(|rest| (*op, rest)))
            .unwrap_or((Op::Eq, part));
            let version = Version::parse(rest).ok_or_else(|| {
                format!("`{part}` is not a version constraint (e.g. \">= 0.66\")")
            })?;
            clauses.push(Clause { op, version });
        }
        Ok(Constraint { clauses })
    }

    pub fn admits(&self, v: &Version) -> bool {
        self.clauses.iter().all(|c| c.admits(v))
    }

    /// The exact version, when the constraint is a single `=` (or bare) clause with all three
    /// segments: what a pin is.
    pub fn exact(&self) -> Option<&Version> {
        match self.clauses.as_slice() {
            [
                Clause {
                    op: Op::Eq,
                    version,
                },
            ] if version.segments.len() == 3 => Some(version),
            _ => None,
        }
    }

    /// Only lower bounds (`>=`): what a reusable module may state.
    pub fn only_minimums(&self) -> bool {
        self.clauses.iter().all(|c| c.op == Op::Ge)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn admits(c: &str, ver: &str) -> bool {
        Constraint::parse(c).unwrap().admits(&v(ver))
    }

    #[test]
    fn operators() {
        assert!(admits("0.66.1", "0.66.1") && !admits("0.66.1", "0.66.2"));
        assert!(admits("= 0.66", "0.66.0"));
        assert!(admits("!= 0.66.1", "0.66.2") && !admits("!=0.66.1", "0.66.1"));
        assert!(admits(">= 0.60", "0.66.1") && !admits(">= 0.70", "0.66.1"));
        assert!(admits("> 0.66.0", "0.66.1") && !admits(">0.66.1", "0.66.1"));
        assert!(admits("< 1.0", "0.99.9") && !admits("<1.0", "1.0.0"));
        assert!(admits("<= 0.66.1", "0.66.1"));
        assert!(admits(">= 0.60, < 1.0", "0.66.1") && !admits(">= 0.60, < 0.65", "0.66.1"));
    }

    #[test]
    fn pessimistic_bumps_the_second_to_last_segment() {
        assert!(admits("~> 0.66.0", "0.66.9") && !admits("~> 0.66.0", "0.67.0"));
        assert!(
            admits("~> 0.66", "0.99.0")
                && !admits("~> 0.66", "1.0.0")
                && !admits("~> 0.66", "0.65.0")
        );
        assert!(admits("~> 1", "1.9.0") && !admits("~> 1", "2.0.0"));
    }

    #[test]
    fn pins_and_minimums() {
        assert_eq!(
            Constraint::parse("0.111.1").unwrap().exact(),
            Some(&v("0.111.1"))
        );
        assert_eq!(
            Constraint::parse("= 0.111.1").unwrap().exact(),
            Some(&v("0.111.1"))
        );
        assert_eq!(
            Constraint::parse("= 0.111").unwrap().exact(),
            None,
            "a pin names all three segments"
        );
        assert_eq!(Constraint::parse("~> 0.111.1").unwrap().exact(), None);
        assert!(
            Constraint::parse(">= 0.60, >= 0.61")
                .unwrap()
                .only_minimums()
        );
        assert!(!Constraint::parse(">= 0.60, < 1.0").unwrap().only_minimums());
        assert!(Constraint::parse("latest").is_err());
        assert!(Constraint::parse(">= ").is_err());
    }

    #[test]
    fn prereleases_sort_before_releases() {
        assert!(v("1.0.0-rc1") < v("1.0.0"));
        assert!(v("0.9.9") < v("1.0.0-rc1"));
        assert_eq!(v("1.2").cmp(&v("1.2.0")), Ordering::Equal);
    }
}

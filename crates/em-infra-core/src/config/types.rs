//! Terraform type constraints (`type = list(object({ ... }))`) and the conversion Terraform applies
//! to a variable's value before any validation rule sees it.
//!
//! `check` must reach the same verdict as `terraform plan`, so a value is converted exactly as
//! Terraform converts it: `"3"` is a valid `number`, `true` a valid `string`, optional object
//! attributes become `null`. One deliberate difference: Terraform silently drops object attributes
//! the type does not declare; we report them, because a misspelt `proxmox_nod` would otherwise
//! place a GPU worker on the wrong host without a word.

use hcl::Value;
use hcl::edit::expr::Expression;

use crate::config::finding::did_you_mean;
use crate::config::hclsrc::{ValuePath, constant_value, object_key_str};

/// A Terraform type constraint.
#[derive(Debug, Clone, PartialEq)]
pub enum Type {
    Any,
    String,
    Number,
    Bool,
    List(Box<Type>),
    Set(Box<Type>),
    Map(Box<Type>),
    Tuple(Vec<Type>),
    Object(Vec<ObjectAttr>),
}

/// One attribute of an `object({...})` type.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectAttr {
    pub name: String,
    pub ty: Type,
    /// Declared with `optional(...)`: may be omitted.
    pub optional: bool,
    /// `optional(T, default)`: the value used when omitted (else null).
    pub default: Option<Value>,
}

impl Type {
    /// Parse a type expression as written in a `variable` block.
    pub fn parse(expr: &Expression) -> Result<Type, String> {
        match expr {
            Expression::Variable(v) => match v.as_str() {
                "string" => Ok(Type::String),
                "number" => Ok(Type::Number),
                "bool" => Ok(Type::Bool),
                "any" => Ok(Type::Any),
                other => Err(format!("unknown type keyword `{other}`")),
            },
            Expression::Parenthesis(p) => Type::parse(p.inner()),
            Expression::FuncCall(call) => {
                let name = call.name.name.as_str();
                let args: Vec<&Expression> = call.args.iter().collect();
                let one = || -> Result<Type, String> {
                    match args.as_slice() {
                        [arg] => Type::parse(arg),
                        _ => Err(format!("`{name}(...)` takes exactly one type")),
                    }
                };
                match name {
                    "list" => Ok(Type::List(Box::new(one()?))),
                    "set" => Ok(Type::Set(Box::new(one()?))),
                    "map" => Ok(Type::Map(Box::new(one()?))),
                    "tuple" => match args.as_slice() {
                        [Expression::Array(items)] => Ok(Type::Tuple(
                            items.iter().map(Type::parse).collect::<Result<_, _>>()?,
                        )),
                        _ => Err("`tuple(...)` takes a list of types".into()),
                    },
                    "object" => match args.as_slice() {
                        [Expression::Object(obj)] => {
                            let mut attrs = Vec::new();
                            for (key, value) in obj.iter() {
                                let name = object_key_str(key)
                                    .ok_or("object attribute names must be identifiers")?;
                                let (ty, optional, default) = parse_attr_type(value.expr())?;
                                attrs.push(ObjectAttr {
                                    name,
                                    ty,
                                    optional,
                                    default,
                                });
                            }
                            Ok(Type::Object(attrs))
                        }
                        _ => Err("`object(...)` takes an object of attribute types".into()),
                    },
                    other => Err(format!("unknown type constructor `{other}(...)`")),
                }
            }
            _ => Err("not a type expression".into()),
        }
    }

    /// Parse a type from source text (used for the contract's own type table).
    pub fn parse_str(text: &str) -> Result<Type, String> {
        let expr = hcl::edit::parser::parse_expr(text).map_err(|e| e.to_string())?;
        Type::parse(&expr)
    }

    /// Short name for messages: "a number", "a list", …
    fn describe(&self) -> &'static str {
        match self {
            Type::Any => "any value",
            Type::String => "a string",
            Type::Number => "a number",
            Type::Bool => "a bool (true or false)",
            Type::List(_) | Type::Set(_) | Type::Tuple(_) => "a list",
            Type::Map(_) => "a map",
            Type::Object(_) => "an object",
        }
    }
}

fn parse_attr_type(expr: &Expression) -> Result<(Type, bool, Option<Value>), String> {
    if let Expression::FuncCall(call) = expr
        && call.name.name.as_str() == "optional"
    {
        let args: Vec<&Expression> = call.args.iter().collect();
        return match args.as_slice() {
            [ty] => Ok((Type::parse(ty)?, true, None)),
            [ty, default] => {
                let default = constant_value(default).map_err(|e| e.to_string())?;
                Ok((Type::parse(ty)?, true, Some(default)))
            }
            _ => Err("`optional(...)` takes a type and an optional default".into()),
        };
    }
    Ok((Type::parse(expr)?, false, None))
}

/// A value that does not fit its type, at `path` inside the variable.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeError {
    pub path: ValuePath,
    pub value: Option<Value>,
    pub message: String,
    pub fix: String,
}

/// Convert `value` to `ty` as Terraform does for an input variable. Every problem is collected
/// (not just the first), each with the path of the offending part.
pub fn convert(value: &Value, ty: &Type) -> Result<Value, Vec<TypeError>> {
    let mut errors = Vec::new();
    let out = convert_at(value, ty, &ValuePath::root(), &mut errors);
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn convert_at(value: &Value, ty: &Type, path: &ValuePath, errors: &mut Vec<TypeError>) -> Value {
    // null is a valid value of every type; whether a variable may be null is a rule, not a type.
    if value.is_null() {
        return Value::Null;
    }
    let mismatch = |errors: &mut Vec<TypeError>| {
        errors.push(TypeError {
            path: path.clone(),
            value: Some(value.clone()),
            message: format!("{} is required, got {}", ty.describe(), kind_of(value)),
            fix: format!("write {}", example_of(ty)),
        });
        value.clone()
    };
    match (ty, value) {
        (Type::Any, v) => v.clone(),
        (Type::String, Value::String(_)) => value.clone(),
        (Type::String, Value::Number(n)) => Value::String(n.to_string()),
        (Type::String, Value::Bool(b)) => Value::String(b.to_string()),
        (Type::Number, Value::Number(_)) => value.clone(),
        (Type::Number, Value::String(s)) => match parse_number(s) {
            Some(n) => Value::Number(n),
            None => mismatch(errors),
        },
        (Type::Bool, Value::Bool(_)) => value.clone(),
        // cty's string→bool conversion accepts exactly these spellings.
        (Type::Bool, Value::String(s)) if s == "true" || s == "1" => Value::Bool(true),
        (Type::Bool, Value::String(s)) if s == "false" || s == "0" => Value::Bool(false),
        (Type::List(elem) | Type::Set(elem), Value::Array(items)) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| convert_at(v, elem, &path.index(i), errors))
                .collect(),
        ),
        (Type::Tuple(elems), Value::Array(items)) if elems.len() == items.len() => Value::Array(
            items
                .iter()
                .zip(elems)
                .enumerate()
                .map(|(i, (v, t))| convert_at(v, t, &path.index(i), errors))
                .collect(),
        ),
        (Type::Map(elem), Value::Object(map)) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), convert_at(v, elem, &path.key(k), errors)))
                .collect(),
        ),
        (Type::Object(attrs), Value::Object(map)) => {
            let mut out = hcl::Map::new();
            for attr in attrs {
                match map.get(&attr.name) {
                    Some(v) => {
                        out.insert(
                            attr.name.clone(),
                            convert_at(v, &attr.ty, &path.key(&attr.name), errors),
                        );
                    }
                    None if attr.optional => {
                        out.insert(
                            attr.name.clone(),
                            attr.default.clone().unwrap_or(Value::Null),
                        );
                    }
                    None => {
                        errors.push(TypeError {
                            path: path.key(&attr.name),
                            value: None,
                            message: format!("attribute `{}` is required", attr.name),
                            fix: format!("add `{} = ...` to this object", attr.name),
                        });
                    }
                }
            }
            for key in map.keys() {
                if !attrs.iter().any(|a| &a.name == key) {
                    let names = attrs.iter().map(|a| a.name.as_str());
                    let fix = match did_you_mean(key, names) {
                        Some(s) => format!("did you mean `{s}`? Rename `{key}` to `{s}`"),
                        None => format!(
                            "remove `{key}`; this object takes only: {}",
                            attrs
                                .iter()
                                .map(|a| a.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    };
                    errors.push(TypeError {
                        path: path.key(key),
                        value: map.get(key).cloned(),
                        message: format!(
                            "unknown attribute `{key}` (Terraform would silently ignore it)"
                        ),
                        fix,
                    });
                }
            }
            Value::Object(out)
        }
        _ => mismatch(errors),
    }
}

/// Terraform parses numeric strings with arbitrary precision; f64 covers every value the contract
/// allows. Words such as "inf" or "nan" are not numbers to Terraform.
fn parse_number(s: &str) -> Option<hcl::Number> {
    let t = s.trim();
    if t.is_empty()
        || !t
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))
    {
        return None;
    }
    if let Ok(i) = t.parse::<i64>() {
        return Some(hcl::Number::from(i));
    }
    t.parse::<f64>().ok().and_then(hcl::Number::from_f64)
}

fn kind_of(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(_) => "a bool".into(),
        Value::Number(_) => "a number".into(),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
    }
}

fn example_of(ty: &Type) -> String {
    match ty {
        Type::Any => "any value".into(),
        Type::String => "a quoted string, e.g. \"text\"".into(),
        Type::Number => "a number without quotes, e.g. 2".into(),
        Type::Bool => "true or false".into(),
        Type::List(_) | Type::Set(_) | Type::Tuple(_) => "a list in brackets, e.g. [ ... ]".into(),
        Type::Map(_) => "a map in braces, e.g. { key = \"value\" }".into(),
        Type::Object(attrs) => format!(
            "an object in braces with {}",
            attrs
                .iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn val(text: &str) -> Value {
        let v: Value = hcl::from_str(&format!("v = {text}")).unwrap();
        v.as_object().unwrap()["v"].clone()
    }

    const GPU: &str = "list(object({ mapping = optional(string), pci_id = optional(string), proxmox_node = optional(string) }))";

    #[test]
    fn parses_nested_types() {
        let ty = Type::parse_str(GPU).unwrap();
        let Type::List(inner) = ty else { panic!() };
        let Type::Object(attrs) = *inner else {
            panic!()
        };
        assert_eq!(attrs.len(), 3);
        assert!(attrs.iter().all(|a| a.optional && a.ty == Type::String));
        assert_eq!(
            Type::parse_str("map(string)").unwrap(),
            Type::Map(Box::new(Type::String))
        );
        assert!(Type::parse_str("strin").is_err());
    }

    #[test]
    fn converts_like_terraform() {
        assert_eq!(convert(&val("\"3\""), &Type::Number).unwrap(), val("3"));
        assert_eq!(convert(&val("3"), &Type::String).unwrap(), val("\"3\""));
        assert_eq!(
            convert(&val("true"), &Type::String).unwrap(),
            val("\"true\"")
        );
        assert_eq!(
            convert(&val("\"false\""), &Type::Bool).unwrap(),
            val("false")
        );
        assert_eq!(convert(&val("null"), &Type::Number).unwrap(), Value::Null);
        assert!(convert(&val("\"two\""), &Type::Number).is_err());
        assert!(convert(&val("1"), &Type::Bool).is_err());
        assert!(convert(&val("[1]"), &Type::Map(Box::new(Type::String))).is_err());
    }

    #[test]
    fn optional_attributes_become_null_and_errors_carry_paths() {
        let ty = Type::parse_str(GPU).unwrap();
        let out = convert(&val("[{ mapping = \"gpu0\" }]"), &ty).unwrap();
        assert_eq!(
            out,
            val("[{ mapping = \"gpu0\", pci_id = null, proxmox_node = null }]")
        );

        let errs = convert(&val("[{ mapping = \"a\" }, { pci_idd = \"x\" }]"), &ty).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].path.render("gpu_workers"), "gpu_workers[1].pci_idd");
        assert!(errs[0].fix.contains("pci_id"), "{:?}", errs[0]);
    }

    #[test]
    fn required_object_attributes_are_reported() {
        let ty =
            Type::parse_str("object({ cores = number, memory_mb = number, disk_gb = number })")
                .unwrap();
        let errs = convert(&val("{ cores = 2, memory_mb = 4096 }"), &ty).unwrap_err();
        assert_eq!(errs[0].path.render("worker_size"), "worker_size.disk_gb");
        let errs = convert(
            &val("{ cores = \"many\", memory_mb = 4096, disk_gb = 32 }"),
            &ty,
        )
        .unwrap_err();
        assert_eq!(errs[0].path.render("worker_size"), "worker_size.cores");
    }
}

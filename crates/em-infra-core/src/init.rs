//! `em-infra init`: an environment's `terraform.tfvars`, written from its
//! `terraform.tfvars.example` (every comment and the layout kept, through hcl-edit) with the values
//! the Proxmox host knows — its node, a storage that takes VM disks and has the most room, a
//! bridge, VM IDs that are free cluster-wide (`/cluster/nextid`, which also sees guests the token
//! may not audit), the GPU mappings on that node — and what only the user knows (the network) from
//! flags or, on a terminal, questions. The result must pass `check` before it is written; an
//! existing file is replaced only with `force`, after a backup.

use std::collections::BTreeSet;
use std::path::PathBuf;

use hcl_edit::expr::Expression;

use crate::config::edit::{TfvarsEdit, write_checked};

use crate::config::Project;
use crate::engine::events::{Frontend, Question};
use crate::failure::bad_input;
use crate::proxmox::{Client, ProxmoxError, VmResource};

/// How many VM ID bases, 100 apart, are tried before giving up on free IDs.
const ID_BASE_TRIES: u64 = 50;

/// What the user gave (flags). `None`: discover it, or keep the example's value.
#[derive(Debug, Clone, Default)]
pub struct InitOptions {
    pub env: String,
    /// Replace an existing `terraform.tfvars` (a backup is kept).
    pub force: bool,
    pub cluster_name: Option<String>,
    pub proxmox_node: Option<String>,
    pub network_cidr: Option<String>,
    pub gateway: Option<String>,
    pub network_bridge: Option<String>,
    pub datastore_id: Option<String>,
    pub worker_count: Option<u32>,
    pub vm_id_base: Option<u64>,
    pub template_vm_id: Option<u64>,
    /// One GPU worker per mapping name.
    pub gpu_mappings: Vec<String>,
    pub ssh_public_key_path: Option<String>,
}

/// Where a written value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Flag,
    /// Read from the Proxmox host.
    Host,
    /// Answered at the terminal.
    Asked,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Origin::Flag => "flag",
            Origin::Host => "Proxmox host",
            Origin::Asked => "asked",
        })
    }
}

/// What `init` wrote.
#[derive(Debug, Clone)]
pub struct InitReport {
    pub tfvars: PathBuf,
    /// The replaced file's copy (only with `force`).
    pub backup: Option<PathBuf>,
    /// Each variable set, its HCL value and where it came from (the rest keep the example's).
    pub values: Vec<(String, String, Origin)>,
    /// What the user should know: Proxmox not asked, mappings available, …
    pub notes: Vec<String>,
}

/// Write `<env>/terraform.tfvars` (see the module docs).
pub fn init(
    project: &Project,
    opts: &InitOptions,
    frontend: &dyn Frontend,
) -> anyhow::Result<InitReport> {
    let env = project.environment(&opts.env)?;
    let target = env.dir.join("terraform.tfvars");
    if target.exists() && !opts.force {
        return Err(bad_input(format!(
            "{} exists: nothing was changed. Edit it, or pass --force to write a new one (the \
             current file is kept as a backup)",
            target.display()
        )));
    }
    let example_path = env.dir.join("terraform.tfvars.example");
    let example = std::fs::read_to_string(&example_path).map_err(|e| {
        bad_input(format!(
            "{}: {e}; init writes the tfvars from the environment's example",
            example_path.display()
        ))
    })?;
    let mut body = TfvarsEdit::parse(&example, &example_path)?;

    let mut values = Values::default();
    let mut notes = Vec::new();
    // A comment line init adds above `gpu_workers` (the host's mappings).
    let mut gpu_comment: Option<String> = None;
    values.flag_str("cluster_name", &opts.cluster_name);
    values.flag_num("worker_count", opts.worker_count.map(u64::from));
    values.flag_str("ssh_public_key_path", &opts.ssh_public_key_path);
    for (variable, flag, given, prompt) in [
        (
            "network_cidr",
            "--network-cidr",
            &opts.network_cidr,
            "the LAN the VMs join, as a CIDR (e.g. 192.168.10.0/24)",
        ),
        (
            "gateway",
            "--gateway",
            &opts.gateway,
            "the LAN's gateway (e.g. 192.168.10.1)",
        ),
    ] {
        match given {
            Some(v) => values.set(variable, Expression::from(v.as_str()), Origin::Flag),
            None => {
                let answer = frontend.ask(&Question::Value {
                    variable: variable.into(),
                    prompt: prompt.into(),
                    flag: flag.into(),
                })?;
                values.set(variable, Expression::from(answer.trim()), Origin::Asked);
            }
        }
    }

    if crate::doctor::uses_proxmox(&env) && proxmox_configured() {
        let client = Client::from_env()?;
        let worker_count = match opts.worker_count {
            Some(n) => u64::from(n),
            None => body.number("worker_count").unwrap_or(0),
        };
        gpu_comment = discover(
            &client,
            opts,
            &body,
            worker_count,
            frontend,
            &mut values,
            &mut notes,
        )
        .map_err(|e| bad_input(format!("asking the Proxmox host: {e}")))?;
    } else {
        values.flag_str("proxmox_node", &opts.proxmox_node);
        values.flag_str("network_bridge", &opts.network_bridge);
        values.flag_str("datastore_id", &opts.datastore_id);
        values.flag_num("vm_id_base", opts.vm_id_base);
        values.flag_num("template_vm_id", opts.template_vm_id);
        values.gpu_workers(&opts.gpu_mappings, Origin::Flag);
        notes.push(if crate::doctor::uses_proxmox(&env) {
            "PROXMOX_VE_ENDPOINT and PROXMOX_VE_API_TOKEN are not set: the Proxmox values are the \
             example's (or your flags); set them and rerun with --force to read the host"
                .to_string()
        } else {
            format!("{} does not use Proxmox: nothing to discover", env.name)
        });
    }

    for (key, expr, _) in &values.0 {
        body.set(key, expr.clone());
    }
    if let Some(comment) = gpu_comment {
        body.comment_above("gpu_workers", &comment);
    }
    let backup = write_checked(project, &env, &target, &body.render())?;
    Ok(InitReport {
        tfvars: target,
        backup,
        values: values
            .0
            .iter()
            .map(|(k, e, o)| (k.clone(), e.to_string().trim().to_string(), *o))
            .collect(),
        notes,
    })
}

/// Both settings a client needs are present.
fn proxmox_configured() -> bool {
    ["PROXMOX_VE_ENDPOINT", "PROXMOX_VE_API_TOKEN"]
        .iter()
        .all(|v| std::env::var(v).is_ok_and(|s| !s.trim().is_empty()))
}

/// The values to write, in order, each once.
#[derive(Default)]
struct Values(Vec<(String, Expression, Origin)>);

impl Values {
    fn set(&mut self, key: &str, expr: Expression, origin: Origin) {
        self.0.retain(|(k, _, _)| k != key);
        self.0.push((key.to_string(), expr, origin));
    }

    fn flag_str(&mut self, key: &str, value: &Option<String>) {
        if let Some(v) = value {
            self.set(key, Expression::from(v.as_str()), Origin::Flag);
        }
    }

    fn flag_num(&mut self, key: &str, value: Option<u64>) {
        if let Some(v) = value {
            self.set(key, Expression::from(v), Origin::Flag);
        }
    }

    fn gpu_workers(&mut self, mappings: &[String], origin: Origin) {
        if mappings.is_empty() {
            return;
        }
        let list = mappings
            .iter()
            .map(|m| format!("{{ mapping = {} }}", Expression::from(m.as_str())))
            .collect::<Vec<_>>()
            .join(", ");
        let expr = hcl_edit::parser::parse_expr(&format!("[{list}]"))
            .expect("a list of mapping objects is valid HCL");
        self.set("gpu_workers", expr, origin);
    }
}

/// The Proxmox half: node, storage, bridge, free VM IDs, GPU mappings.
fn discover(
    client: &Client,
    opts: &InitOptions,
    body: &TfvarsEdit,
    worker_count: u64,
    frontend: &dyn Frontend,
    values: &mut Values,
    notes: &mut Vec<String>,
) -> anyhow::Result<Option<String>> {
    // The node.
    let nodes = client.nodes()?;
    let online: Vec<&str> = nodes
        .iter()
        .filter(|n| n.status == "online")
        .map(|n| n.node.as_str())
        .collect();
    let (node, origin) = match &opts.proxmox_node {
        Some(n) if nodes.iter().any(|x| &x.node == n) => (n.clone(), Origin::Flag),
        Some(n) => {
            return Err(bad_input(format!(
                "--proxmox-node {n}: no such node; the host has {}",
                names(nodes.iter().map(|n| n.node.as_str()))
            )));
        }
        None => match online.as_slice() {
            [one] => (one.to_string(), Origin::Host),
            [] => return Err(bad_input("no Proxmox node is online")),
            many => (
                frontend
                    .ask(&Question::Value {
                        variable: "proxmox_node".into(),
                        prompt: format!(
                            "the Proxmox node for the VMs ({})",
                            names(many.iter().copied())
                        ),
                        flag: "--proxmox-node".into(),
                    })?
                    .trim()
                    .to_string(),
                Origin::Asked,
            ),
        },
    };
    values.set("proxmox_node", Expression::from(node.as_str()), origin);

    // A storage that takes VM disks: the given one (checked), else the active one with most room.
    let storages = client.image_storages(&node)?;
    let usable: Vec<_> = storages
        .iter()
        .filter(|s| s.status.active && s.status.allows("images"))
        .collect();
    match &opts.datastore_id {
        Some(id) if usable.iter().any(|s| &s.storage == id) => {
            values.set("datastore_id", Expression::from(id.as_str()), Origin::Flag);
        }
        Some(id) => {
            return Err(bad_input(format!(
                "--datastore-id {id}: not an active storage for VM disks on {node}; those are: {}",
                names(usable.iter().map(|s| s.storage.as_str()))
            )));
        }
        None => {
            let best = usable.iter().max_by_key(|s| s.status.avail).ok_or_else(|| {
                bad_input(format!(
                    "no active storage on {node} takes VM disks: enable the content type \"Disk \
                     image\" on one (Datacenter > Storage), or pass --datastore-id"
                ))
            })?;
            values.set(
                "datastore_id",
                Expression::from(best.storage.as_str()),
                Origin::Host,
            );
        }
    }

    // A bridge.
    let bridges: Vec<String> = client
        .network(&node)?
        .into_iter()
        .filter(|i| i.is_bridge())
        .map(|i| i.iface)
        .collect();
    match &opts.network_bridge {
        Some(b) if bridges.contains(b) => {
            values.set("network_bridge", Expression::from(b.as_str()), Origin::Flag);
        }
        Some(b) => {
            return Err(bad_input(format!(
                "--network-bridge {b}: no such bridge on {node}; it has {}",
                names(bridges.iter().map(String::as_str))
            )));
        }
        None => {
            let bridge = bridges
                .iter()
                .find(|b| *b == "vmbr0")
                .or(bridges.first())
                .ok_or_else(|| bad_input(format!("{node} has no network bridge for the VMs")))?;
            values.set(
                "network_bridge",
                Expression::from(bridge.as_str()),
                Origin::Host,
            );
        }
    }

    // GPU mappings with an entry for this node.
    let mappings: Vec<String> = client
        .pci_mappings()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.entry_for(&node).is_some())
        .map(|m| m.id)
        .collect();
    for m in &opts.gpu_mappings {
        if !mappings.contains(m) {
            return Err(bad_input(format!(
                "--gpu-mapping {m}: no PCI resource mapping of that name has an entry for {node}; \
                 mappings on {node}: {}",
                names(mappings.iter().map(String::as_str))
            )));
        }
    }
    values.gpu_workers(&opts.gpu_mappings, Origin::Flag);
    // A comment line for above `gpu_workers`: the host's mappings.
    let mut gpu_comment = None;
    if opts.gpu_mappings.is_empty() && !mappings.is_empty() {
        notes.push(format!(
            "GPU mappings on {node}: {} (one GPU worker each: --gpu-mapping NAME)",
            mappings.join(", ")
        ));
        // Named in the file too, beside gpu_workers, without creating GPU VMs nobody asked for.
        let example = mappings
            .iter()
            .map(|m| format!("{{ mapping = {} }}", Expression::from(m.as_str())))
            .collect::<Vec<_>>()
            .join(", ");
        gpu_comment = Some(format!(
            "# GPU mappings on {node} (read by em-infra init): gpu_workers = [{example}]\n"
        ));
    }

    // VM IDs free cluster-wide: the template's, then a base whose node IDs are all free.
    let guests = client.vm_resources().unwrap_or_default();
    let template = opts
        .template_vm_id
        .or_else(|| body.number("template_vm_id"))
        .unwrap_or(9000);
    let template_ok =
        client.vmid_free(template)? || guests.iter().any(|g| g.vmid == template && g.template);
    if !template_ok {
        return Err(bad_input(format!(
            "template_vm_id {template} is taken by a guest that is not a template: pass \
             --template-vm-id with a free ID"
        )));
    }
    values.set(
        "template_vm_id",
        Expression::from(template),
        if opts.template_vm_id.is_some() {
            Origin::Flag
        } else {
            Origin::Host
        },
    );
    let cluster = opts
        .cluster_name
        .clone()
        .or_else(|| body.string("cluster_name"))
        .unwrap_or_else(|| "k3s-dev".into());
    let slots: Vec<(u64, String)> = crate::config::topology::node_slots(
        &cluster,
        u32::try_from(worker_count).unwrap_or(u32::MAX),
        u32::try_from(opts.gpu_mappings.len()).unwrap_or(u32::MAX),
    )
    .into_iter()
    .map(|(name, _, slot)| (u64::from(slot), name))
    .collect();
    let first = opts
        .vm_id_base
        .or_else(|| body.number("vm_id_base"))
        .unwrap_or(9100);
    let tries = if opts.vm_id_base.is_some() {
        1
    } else {
        ID_BASE_TRIES
    };
    let mut chosen = None;
    for base in (0..tries).map(|i| first + 100 * i) {
        if ids_free(client, &guests, base, &slots, template)? {
            chosen = Some(base);
            break;
        }
    }
    let base = chosen.ok_or_else(|| {
        bad_input(format!(
            "vm_id_base {first}: the planned VM IDs are taken{}; pass --vm-id-base with a free range",
            if tries > 1 { format!(" (and in the {} ranges after it)", tries - 1) } else { String::new() }
        ))
    })?;
    values.set(
        "vm_id_base",
        Expression::from(base),
        if opts.vm_id_base.is_some() {
            Origin::Flag
        } else {
            Origin::Host
        },
    );
    Ok(gpu_comment)
}

/// Every planned ID of `base` is free, or already holds our VM of that name (a rerun), and none
/// is the template's.
fn ids_free(
    client: &Client,
    guests: &[VmResource],
    base: u64,
    slots: &[(u64, String)],
    template: u64,
) -> Result<bool, ProxmoxError> {
    for (slot, name) in slots {
        let id = base + slot;
        if id == template {
            return Ok(false);
        }
        let ours = guests
            .iter()
            .any(|g| g.vmid == id && g.name.as_deref() == Some(name.as_str()));
        if !ours && !client.vmid_free(id)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn names<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let list: BTreeSet<&str> = items.collect();
    if list.is_empty() {
        "none".into()
    } else {
        list.into_iter().collect::<Vec<_>>().join(", ")
    }
}

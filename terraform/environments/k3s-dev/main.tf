# k3s-dev: one control plane, N workers, N GPU workers, cloned from the cloud-init template.
#
#   topology (provider-free: names, IPs, VM IDs, validation)
#     ├─► vm_ubuntu22   for_each over the control plane and the plain workers
#     └─► gpu_worker    for_each over the GPU workers (vm_ubuntu22 + q35/OVMF/hostpci)
#
# Keep apply parallelism low (em-infra and README.md use -parallelism=2): parallel full clones
# of one template contend for its lock. Explicit VM IDs and clone retries absorb the rest.

module "topology" {
  source = "../../modules/topology"

  cluster_name        = var.cluster_name
  proxmox_node        = var.proxmox_node
  node_placement      = var.node_placement
  control_plane_count = var.control_plane_count
  worker_count        = var.worker_count
  gpu_workers         = var.gpu_workers
  allow_raw_pci_ids   = var.allow_raw_pci_ids
  network_cidr        = var.network_cidr
  gateway             = var.gateway
  first_host_offset   = var.first_host_offset
  dns_servers         = var.dns_servers
  network_bridge      = var.network_bridge
  vlan_id             = var.vlan_id
  vm_id_base          = var.vm_id_base
  template_vm_id      = var.template_vm_id
  datastore_id        = var.datastore_id
  control_plane_size  = var.control_plane_size
  worker_size         = var.worker_size
  gpu_worker_size     = var.gpu_worker_size
  ssh_user            = var.ssh_user
}

locals {
  # Every non-empty, non-comment line of the key file is one key.
  ssh_public_keys = [
    for line in split("\n", try(file(pathexpand(var.ssh_public_key_path)), "")) :
    trimspace(line) if trimspace(line) != "" && !startswith(trimspace(line), "#")
  ]

  vm_settings = {
    cluster_name    = module.topology.cluster_name
    template_vm_id  = module.topology.template_vm_id
    template_node   = module.topology.proxmox_node
    datastore_id    = module.topology.datastore_id
    network_bridge  = module.topology.network_bridge
    vlan_id         = module.topology.vlan_id
    prefix_length   = module.topology.prefix_length
    gateway         = module.topology.gateway
    dns_servers     = module.topology.dns_servers
    ssh_user        = module.topology.ssh_user
    ssh_public_keys = local.ssh_public_keys
  }
}

# Fails the plan, before any VM is touched, with a message naming the variable when the key
# file is missing or empty (file() alone would fail with a message about this file). It holds
# no data, so a different key on another workstation plans no change here.
resource "terraform_data" "ssh_public_keys" {
  input = null

  lifecycle {
    precondition {
      condition     = length(local.ssh_public_keys) > 0
      error_message = "ssh_public_key_path ${jsonencode(var.ssh_public_key_path)} is missing, unreadable or holds no key: point it at your SSH public key (.pub), or create one with `ssh-keygen -t ed25519`."
    }
  }
}

module "vm_ubuntu22" {
  source   = "../../modules/vm_ubuntu22"
  for_each = { for name, node in module.topology.nodes : name => node if node.gpu == null }

  node     = each.value
  settings = local.vm_settings
}

module "gpu_worker" {
  source   = "../../modules/gpu_worker"
  for_each = { for name, node in module.topology.nodes : name => node if node.gpu != null }

  node     = each.value
  settings = local.vm_settings
}

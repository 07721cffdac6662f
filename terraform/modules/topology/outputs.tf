output "nodes" {
  description = "Every node, keyed by name: name, role (control_plane | worker | gpu_worker), ip (no prefix), vm_id, proxmox_node, gpu ({ mapping, pci_id }, one of them null; null for non-GPU nodes), cores, memory_mb, disk_gb."
  value       = local.nodes
}

output "inventory_nodes" {
  description = "The environments' `nodes` output contract (docs/architecture-freeze.md §2): nodes without the sizes, keyed by name: { name, role, ip, vm_id, proxmox_node, gpu }."
  value = {
    for name, n in local.nodes : name => {
      name         = n.name
      role         = n.role
      ip           = n.ip
      vm_id        = n.vm_id
      proxmox_node = n.proxmox_node
      gpu          = n.gpu
    }
  }
}

output "control_plane_ips" {
  description = "IPs (no prefix) of the control plane nodes, slot order."
  value       = local.ips_by_role["control_plane"]
}

output "worker_ips" {
  description = "IPs (no prefix) of the plain workers, slot order."
  value       = local.ips_by_role["worker"]
}

output "gpu_worker_ips" {
  description = "IPs (no prefix) of the GPU workers, slot order."
  value       = local.ips_by_role["gpu_worker"]
}

output "cluster_name" {
  description = "The validated cluster_name."
  value       = var.cluster_name
}

output "ssh_user" {
  description = "The user cloud-init creates and Ansible connects as."
  value       = var.ssh_user
}

output "prefix_length" {
  description = "Prefix length of network_cidr, for the VMs' ip/prefix address."
  value       = local.prefix_length
}

output "gateway" {
  description = "The validated default gateway."
  value       = var.gateway
}

output "dns_servers" {
  description = "DNS servers for cloud-init: dns_servers, or [gateway] when it is empty."
  value       = length(var.dns_servers) > 0 ? var.dns_servers : [var.gateway]
}

output "network_bridge" {
  description = "The validated Proxmox bridge."
  value       = var.network_bridge
}

output "vlan_id" {
  description = "The validated VLAN tag, or null (untagged)."
  value       = var.vlan_id
}

output "datastore_id" {
  description = "The validated datastore for disks, EFI disks and cloud-init drives."
  value       = var.datastore_id
}

output "template_vm_id" {
  description = "The validated VM ID of the template to clone."
  value       = var.template_vm_id
}

output "proxmox_node" {
  description = "The default Proxmox node: where the template lives (clone source) and where unplaced VMs land."
  value       = var.proxmox_node
}

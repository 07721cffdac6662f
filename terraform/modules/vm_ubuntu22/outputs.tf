output "vm_id" {
  description = "Proxmox VM ID."
  value       = proxmox_virtual_environment_vm.this.vm_id
}

output "name" {
  description = "VM name (= node name = hostname)."
  value       = proxmox_virtual_environment_vm.this.name
}

output "ipv4" {
  description = "The static IPv4 address cloud-init configured (no prefix). Deliberately not the agent-reported ipv4_addresses, whose order changes once k3s adds interfaces."
  value       = var.node.ip
  depends_on  = [proxmox_virtual_environment_vm.this]
}

output "proxmox_node" {
  description = "Proxmox node the VM runs on."
  value       = proxmox_virtual_environment_vm.this.node_name
}

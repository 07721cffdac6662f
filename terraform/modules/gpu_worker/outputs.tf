output "vm_id" {
  description = "Proxmox VM ID."
  value       = module.vm.vm_id
}

output "name" {
  description = "VM name (= node name = hostname)."
  value       = module.vm.name
}

output "ipv4" {
  description = "The static IPv4 address cloud-init configured (no prefix)."
  value       = module.vm.ipv4
}

output "proxmox_node" {
  description = "Proxmox node the VM runs on."
  value       = module.vm.proxmox_node
}

output "gpu" {
  description = "The passed-through device: { mapping, pci_id }, one of them null."
  value       = { mapping = var.node.gpu.mapping, pci_id = var.node.gpu.pci_id }
}

variable "node" {
  description = "The GPU worker to create, as in the topology module's `nodes` output: name, role, ip, vm_id, proxmox_node, cores, memory_mb, disk_gb and gpu = { mapping, pci_id } (exactly one set)."
  # Passed through to vm_ubuntu22, which declares the full type; only gpu is read here.
  type = any

  validation {
    condition     = try((var.node.gpu.mapping != null) != (var.node.gpu.pci_id != null), false)
    error_message = "node.gpu must be { mapping = \"<PCI resource mapping>\" } or { pci_id = \"0000:01:00.0\" }: a GPU worker needs exactly one device."
  }
}

variable "settings" {
  description = "Cluster-wide VM settings; the same object as vm_ubuntu22's `settings` (type-checked there)."
  type        = any
}

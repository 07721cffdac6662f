variable "node" {
  description = "The node to create, as in the topology module's `nodes` output (extra attributes such as gpu are ignored): name, role, ip (no prefix), vm_id, proxmox_node, cores, memory_mb, disk_gb."
  type = object({
    name         = string
    role         = string
    ip           = string
    vm_id        = number
    proxmox_node = string
    cores        = number
    memory_mb    = number
    disk_gb      = number
  })
}

variable "settings" {
  description = "Cluster-wide VM settings, all taken from the topology module's outputs except the SSH keys and tuning knobs."
  type = object({
    cluster_name    = string
    template_vm_id  = number
    template_node   = string # Proxmox node holding the template (the topology's default proxmox_node)
    datastore_id    = string
    network_bridge  = string
    vlan_id         = optional(number)
    prefix_length   = number
    gateway         = string
    dns_servers     = list(string)
    ssh_user        = string
    ssh_public_keys = list(string)
    # Parallel clones of one template contend for its lock; Proxmox retries the clone this often.
    clone_retries = optional(number, 3)
    # How long the provider waits for the guest agent (installed in the template) to report an IPv4.
    agent_timeout = optional(string, "15m")
  })
}

# Hardware knobs for PCI passthrough; the gpu_worker module sets them. Defaults are a plain VM.

variable "machine" {
  description = "QEMU machine type; null = the provider default (\"pc\"). PCIe passthrough needs \"q35\"."
  type        = string
  default     = null
}

variable "bios" {
  description = "Firmware; null = the provider default (\"seabios\"). \"ovmf\" (UEFI) also creates an EFI disk."
  type        = string
  default     = null
}

variable "memory_floating_mb" {
  description = "Balloon floor in MiB; 0 = no balloon device (required for PCI passthrough, and keeps kubelet's view of memory fixed)."
  type        = number
  default     = 0
}

variable "hostpci" {
  description = "Host PCI devices to pass through, in order (hostpci0, hostpci1, ...): each sets mapping (a PCI resource mapping name) or id (raw BDF, root@pam only)."
  type = list(object({
    mapping = optional(string)
    id      = optional(string)
  }))
  default  = []
  nullable = false

  validation {
    condition     = alltrue([for d in var.hostpci : (d.mapping != null) != (d.id != null)])
    error_message = "hostpci: each entry must set exactly one of mapping or id."
  }
}

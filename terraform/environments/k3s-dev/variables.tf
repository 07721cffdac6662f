# The topology input contract (docs/architecture-freeze.md §1). This file is also the input of
# tests/fixtures/offline-env (a symlink), so both accept exactly the same tfvars.
#
# Defaults and validation live in ONE place, terraform/modules/topology: a variable left unset
# here is null, and the module (nullable = false) then applies its own default. The default
# named in each description is that module default.

variable "cluster_name" {
  description = "Cluster name, prefix of every node name: a DNS label of 2-32 characters. Default \"k3s-dev\"."
  type        = string
  default     = null
}

variable "proxmox_node" {
  description = "Proxmox VE node every VM lands on unless placed elsewhere; the template lives here. Default \"pve\"."
  type        = string
  default     = null
}

variable "node_placement" {
  description = "Optional node name => Proxmox node, e.g. { \"k3s-dev-worker-2\" = \"pve2\" }. Keys must be derived node names. Default {}."
  type        = map(string)
  default     = null
}

variable "control_plane_count" {
  description = "Number of k3s servers: exactly 1 (non-HA). Default 1."
  type        = number
  default     = null
}

variable "worker_count" {
  description = "Number of plain k3s agents, 0-30. Default 2."
  type        = number
  default     = null
}

variable "gpu_workers" {
  description = "One entry per GPU worker: exactly one of mapping (PCI resource mapping name) or pci_id (BDF \"0000:01:00.0\", needs allow_raw_pci_ids), optional proxmox_node. At most 10. Default []."
  type = list(object({
    mapping      = optional(string)
    pci_id       = optional(string)
    proxmox_node = optional(string)
  }))
  default = null
}

variable "allow_raw_pci_ids" {
  description = "Allow gpu_workers[*].pci_id (raw passthrough; needs root@pam password auth, API tokens are refused). Default false."
  type        = bool
  default     = null
}

variable "network_cidr" {
  description = "IPv4 network of the VMs, prefix 8-30, e.g. \"192.168.10.0/24\". Required."
  type        = string
}

variable "gateway" {
  description = "Default gateway: inside network_cidr, not the network/broadcast address, not a node IP. Required."
  type        = string
}

variable "first_host_offset" {
  description = "Host number of slot 0 (control plane); workers at +10.., GPU workers at +40... Default 10."
  type        = number
  default     = null
}

variable "dns_servers" {
  description = "DNS servers for the VMs (IPv4). Default [] = the gateway."
  type        = list(string)
  default     = null
}

variable "network_bridge" {
  description = "Proxmox bridge of the VMs' NIC. Default \"vmbr0\"."
  type        = string
  default     = null
}

variable "vlan_id" {
  description = "VLAN tag 1-4094 of the VMs' NIC. Default null (untagged)."
  type        = number
  default     = null
}

variable "vm_id_base" {
  description = "VM ID of slot 0; node VM ID = vm_id_base + slot, all inside 100-999999999. Default 9100."
  type        = number
  default     = null
}

variable "template_vm_id" {
  description = "VM ID of the cloud-init template to clone (not a node's VM ID). Default 9000."
  type        = number
  default     = null
}

variable "datastore_id" {
  description = "Proxmox storage for disks, EFI disks and cloud-init drives. Default \"local-lvm\"."
  type        = string
  default     = null
}

variable "control_plane_size" {
  description = "Control plane: cores 2-128, memory_mb >= 2048, disk_gb 10-4096. Default { cores = 2, memory_mb = 4096, disk_gb = 32 }."
  type = object({
    cores     = number
    memory_mb = number
    disk_gb   = number
  })
  default = null
}

variable "worker_size" {
  description = "Each plain worker: cores 1-128, memory_mb >= 1024, disk_gb 10-4096. Default { cores = 2, memory_mb = 4096, disk_gb = 32 }."
  type = object({
    cores     = number
    memory_mb = number
    disk_gb   = number
  })
  default = null
}

variable "gpu_worker_size" {
  description = "Each GPU worker: cores 1-128, memory_mb >= 4096, disk_gb 10-4096. Default { cores = 4, memory_mb = 16384, disk_gb = 64 }."
  type = object({
    cores     = number
    memory_mb = number
    disk_gb   = number
  })
  default = null
}

variable "ssh_user" {
  description = "User cloud-init creates on every VM and Ansible connects as. Default \"ubuntu\"."
  type        = string
  default     = null
}

# Not a topology input (only k3s-dev reads the file), so its one rule lives here.
variable "ssh_public_key_path" {
  description = "Public key file (one or more keys, authorized_keys format) installed for ssh_user. \"~\" is expanded."
  type        = string
  default     = "~/.ssh/id_ed25519.pub"
  nullable    = false

  validation {
    condition     = trimspace(var.ssh_public_key_path) != ""
    error_message = "ssh_public_key_path is empty: set it to your SSH public key file, e.g. \"~/.ssh/id_ed25519.pub\" (create one with `ssh-keygen -t ed25519`)."
  }
}

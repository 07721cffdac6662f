# The topology input contract (docs/architecture-freeze.md §1). Every rule lives here, as a
# validation block whose message names the variable, shows the bad value and says the fix.
# `em-infra check` applies the same rules without Terraform; tests/tfvars-corpus pins both.
#
# Terraform skips a validation that refers to another variable whose own validation failed,
# so each mistake is reported once, on the variable the rule belongs to.
#
# Validation conditions may only refer to variables (a local that reads the validated
# variable would be a cycle), hence the repeated inline slot expressions:
#   slots = concat([0], range(10, 10 + worker_count), range(40, 40 + length(gpu_workers)))
#   name  = <cluster_name>-cp-1 | <cluster_name>-worker-<i> | <cluster_name>-gpu-<j>

# ---------------------------------------------------------------------------------------
# Cluster identity and placement
# ---------------------------------------------------------------------------------------

variable "cluster_name" {
  description = "Cluster name: prefix of every node name (<cluster_name>-cp-1, -worker-<i>, -gpu-<j>), a Proxmox tag and the kubeconfig context. A DNS label of 2-32 characters."
  type        = string
  default     = "k3s-dev"
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}[a-z0-9]$", var.cluster_name))
    error_message = "cluster_name ${jsonencode(var.cluster_name)} is not a valid DNS label: use 2-32 characters of lower-case letters, digits and '-', starting with a letter and not ending with '-' (for example \"k3s-dev\"), so every node name stays a valid hostname and Proxmox VM name."
  }
}

variable "proxmox_node" {
  description = "Proxmox VE node every VM lands on unless node_placement or a GPU entry's proxmox_node says otherwise."
  type        = string
  default     = "pve"
  nullable    = false

  validation {
    condition     = can(regex("^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$", var.proxmox_node))
    error_message = "proxmox_node ${jsonencode(var.proxmox_node)} is not a valid Proxmox node name: use letters, digits and '-', not starting or ending with '-' (the name shown by `pvecm nodes` or in the web UI, e.g. \"pve\")."
  }
}

variable "node_placement" {
  description = "Optional per-node placement: derived node name (e.g. \"k3s-dev-worker-2\") => Proxmox node name. Wins over a GPU entry's proxmox_node and over proxmox_node."
  type        = map(string)
  default     = {}
  nullable    = false

  validation {
    condition = alltrue([
      for key in keys(var.node_placement) : contains(concat(
        ["${var.cluster_name}-cp-1"],
        [for i in range(var.worker_count) : "${var.cluster_name}-worker-${i + 1}"],
        [for j in range(length(var.gpu_workers)) : "${var.cluster_name}-gpu-${j + 1}"],
      ), key)
    ])
    error_message = "node_placement has key(s) ${jsonencode([for key in keys(var.node_placement) : key if !contains(concat(["${var.cluster_name}-cp-1"], [for i in range(var.worker_count) : "${var.cluster_name}-worker-${i + 1}"], [for j in range(length(var.gpu_workers)) : "${var.cluster_name}-gpu-${j + 1}"]), key)])} that are not node names of this cluster: use one of ${jsonencode(concat(["${var.cluster_name}-cp-1"], [for i in range(var.worker_count) : "${var.cluster_name}-worker-${i + 1}"], [for j in range(length(var.gpu_workers)) : "${var.cluster_name}-gpu-${j + 1}"]))}, or remove the entry."
  }

  validation {
    condition     = alltrue([for value in values(var.node_placement) : can(regex("^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$", value))])
    error_message = "node_placement has invalid Proxmox node name(s) ${join(", ", [for key, value in var.node_placement : "${jsonencode(key)} = ${jsonencode(value)}" if !can(regex("^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$", value))])}: use letters, digits and '-', not starting or ending with '-' (e.g. \"pve\")."
  }
}

# ---------------------------------------------------------------------------------------
# Node counts and GPUs
# ---------------------------------------------------------------------------------------

variable "control_plane_count" {
  description = "Number of k3s servers. Exactly 1: the MVP is a non-HA cluster."
  type        = number
  default     = 1
  nullable    = false

  validation {
    condition     = var.control_plane_count == 1
    error_message = "control_plane_count = ${var.control_plane_count} is not supported: set control_plane_count = 1 (the cluster has exactly one k3s server; HA control planes are out of scope)."
  }
}

variable "worker_count" {
  description = "Number of plain (non-GPU) k3s agents, 0-30. Workers use slots 10-39."
  type        = number
  default     = 2
  nullable    = false

  validation {
    condition     = var.worker_count == floor(var.worker_count) && var.worker_count >= 0 && var.worker_count <= 30
    error_message = "worker_count = ${var.worker_count} is invalid: use a whole number from 0 to 30."
  }
}

variable "gpu_workers" {
  description = "One entry per GPU worker, in slot order (slots 40-49). Each sets exactly one of mapping (a Proxmox PCI resource mapping name, preferred) or pci_id (raw BDF like \"0000:01:00.0\", needs allow_raw_pci_ids = true); proxmox_node optionally pins the VM to the node holding the GPU."
  type = list(object({
    mapping      = optional(string)
    pci_id       = optional(string)
    proxmox_node = optional(string)
  }))
  default  = []
  nullable = false

  validation {
    condition     = length(var.gpu_workers) <= 10
    error_message = "gpu_workers has ${length(var.gpu_workers)} entries: at most 10 GPU workers are supported (slots 40-49); remove entries."
  }

  validation {
    condition     = alltrue([for g in var.gpu_workers : (g.mapping != null) != (g.pci_id != null)])
    error_message = "${join(", ", [for i, g in var.gpu_workers : "gpu_workers[${i}]" if(g.mapping != null) == (g.pci_id != null)])} must set exactly one of mapping or pci_id: set mapping = \"<PCI resource mapping name>\" (Datacenter > Resource Mappings), or pci_id = \"0000:01:00.0\" with allow_raw_pci_ids = true, not both and not neither."
  }

  validation {
    condition     = alltrue([for g in var.gpu_workers : g.mapping == null || can(regex("^[a-zA-Z][a-zA-Z0-9_-]{0,127}$", g.mapping))])
    error_message = "gpu_workers has invalid mapping name(s) ${join(", ", [for i, g in var.gpu_workers : "gpu_workers[${i}].mapping = ${jsonencode(g.mapping)}" if g.mapping != null && !can(regex("^[a-zA-Z][a-zA-Z0-9_-]{0,127}$", g.mapping))])}: a PCI resource mapping name starts with a letter and has up to 128 letters, digits, '_' or '-' (e.g. \"gpu0\")."
  }

  validation {
    condition     = alltrue([for g in var.gpu_workers : g.pci_id == null || can(regex("^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\\.[0-7]$", g.pci_id))])
    error_message = "gpu_workers has malformed pci_id(s) ${join(", ", [for i, g in var.gpu_workers : "gpu_workers[${i}].pci_id = ${jsonencode(g.pci_id)}" if g.pci_id != null && !can(regex("^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\\.[0-7]$", g.pci_id))])}: write the full lower-case PCI address domain:bus:device.function as `lspci -D` prints it, e.g. \"0000:01:00.0\"."
  }

  validation {
    condition     = var.allow_raw_pci_ids || alltrue([for g in var.gpu_workers : g.pci_id == null])
    error_message = "gpu_workers uses raw pci_id(s) ${join(", ", [for i, g in var.gpu_workers : "gpu_workers[${i}].pci_id = ${jsonencode(g.pci_id)}" if g.pci_id != null])} but allow_raw_pci_ids is false: raw PCI IDs need root@pam password auth (API tokens are refused), so create a PCI resource mapping and set mapping = \"<name>\" instead, or set allow_raw_pci_ids = true."
  }

  validation {
    condition = (
      length(compact([for g in var.gpu_workers : g.mapping])) == length(distinct(compact([for g in var.gpu_workers : g.mapping]))) &&
      length(compact([for g in var.gpu_workers : g.pci_id])) == length(distinct(compact([for g in var.gpu_workers : g.pci_id])))
    )
    error_message = "gpu_workers lists the same device more than once (${join(", ", distinct([for v in concat(compact([for g in var.gpu_workers : g.mapping]), compact([for g in var.gpu_workers : g.pci_id])) : jsonencode(v) if length([for w in concat(compact([for g in var.gpu_workers : g.mapping]), compact([for g in var.gpu_workers : g.pci_id])) : w if w == v]) > 1]))}): a GPU can be passed through to one VM only; give each entry its own mapping or pci_id."
  }

  validation {
    condition     = alltrue([for g in var.gpu_workers : g.proxmox_node == null || can(regex("^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$", g.proxmox_node))])
    error_message = "gpu_workers has invalid proxmox_node name(s) ${join(", ", [for i, g in var.gpu_workers : "gpu_workers[${i}].proxmox_node = ${jsonencode(g.proxmox_node)}" if g.proxmox_node != null && !can(regex("^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$", g.proxmox_node))])}: use letters, digits and '-', not starting or ending with '-' (e.g. \"pve\"), or leave proxmox_node out."
  }
}

variable "allow_raw_pci_ids" {
  description = "Opt-in for gpu_workers[*].pci_id (raw PCI passthrough). Raw IDs only work with root@pam password auth; API tokens need PCI resource mappings."
  type        = bool
  default     = false
  nullable    = false
}

# ---------------------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------------------

variable "network_cidr" {
  description = "IPv4 network of the VMs, e.g. \"192.168.10.0/24\" (prefix 8-30). Node IP = cidrhost(network_cidr, first_host_offset + slot)."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])/([0-9]|[12][0-9]|3[0-2])$", var.network_cidr))
    error_message = "network_cidr ${jsonencode(var.network_cidr)} is not an IPv4 CIDR: write address/prefix, e.g. \"192.168.10.0/24\"."
  }

  validation {
    condition     = !can(regex("^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])/([0-9]|[12][0-9]|3[0-2])$", var.network_cidr)) || try(tonumber(split("/", var.network_cidr)[1]) >= 8 && tonumber(split("/", var.network_cidr)[1]) <= 30, false)
    error_message = "network_cidr ${jsonencode(var.network_cidr)} has prefix length /${try(split("/", var.network_cidr)[1], "?")}: use a prefix from /8 to /30 (e.g. /24), so the network has room for a gateway and the nodes."
  }

  # Enough addresses: the highest host number in use must stay below the broadcast address.
  validation {
    # Wrong prefixes are the rule above's business.
    condition = try(
      tonumber(split("/", var.network_cidr)[1]) < 8 || tonumber(split("/", var.network_cidr)[1]) > 30 ||
      var.first_host_offset + (length(var.gpu_workers) > 0 ? 39 + length(var.gpu_workers) : (var.worker_count > 0 ? 9 + var.worker_count : 0))
      < pow(2, 32 - tonumber(split("/", var.network_cidr)[1])) - 1,
      true
    )
    error_message = "network_cidr ${jsonencode(var.network_cidr)} is too small: it has host numbers 1-${try(pow(2, 32 - tonumber(split("/", var.network_cidr)[1])) - 2, "?")}, but the last node needs host number ${try(var.first_host_offset + (length(var.gpu_workers) > 0 ? 39 + length(var.gpu_workers) : (var.worker_count > 0 ? 9 + var.worker_count : 0)), "?")} (first_host_offset ${var.first_host_offset} + slot ${length(var.gpu_workers) > 0 ? 39 + length(var.gpu_workers) : (var.worker_count > 0 ? 9 + var.worker_count : 0)}; workers use slots 10-39, GPU workers 40-49): use a larger network (smaller prefix), a smaller first_host_offset, or fewer nodes."
  }
}

variable "gateway" {
  description = "Default gateway of the VMs: an IPv4 address inside network_cidr that is not the network or broadcast address and not a node IP."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$", var.gateway))
    error_message = "gateway ${jsonencode(var.gateway)} is not an IPv4 address: write it like \"192.168.10.1\" (no prefix, no leading zeros)."
  }

  validation {
    condition     = try(cidrhost(var.network_cidr, 0) == cidrhost("${var.gateway}/${split("/", var.network_cidr)[1]}", 0), true)
    error_message = "gateway ${jsonencode(var.gateway)} is outside network_cidr ${jsonencode(var.network_cidr)}: pick an address inside the CIDR (usually your router, e.g. ${try(jsonencode(cidrhost(var.network_cidr, 1)), "the first host")})."
  }

  validation {
    condition     = try(var.gateway != cidrhost(var.network_cidr, 0) && var.gateway != cidrhost(var.network_cidr, -1), true)
    error_message = "gateway ${jsonencode(var.gateway)} is the network or broadcast address of network_cidr ${jsonencode(var.network_cidr)}: pick a host address (usually your router, e.g. ${try(jsonencode(cidrhost(var.network_cidr, 1)), "the first host")})."
  }

  validation {
    condition = try(!contains([
      for slot in concat([0], range(10, 10 + var.worker_count), range(40, 40 + length(var.gpu_workers))) :
      cidrhost(var.network_cidr, var.first_host_offset + slot)
    ], var.gateway), true)
    error_message = "gateway ${jsonencode(var.gateway)} is also the IP of node ${try(jsonencode(one([for slot in concat([0], range(10, 10 + var.worker_count), range(40, 40 + length(var.gpu_workers))) : (slot == 0 ? "${var.cluster_name}-cp-1" : slot < 40 ? "${var.cluster_name}-worker-${slot - 9}" : "${var.cluster_name}-gpu-${slot - 39}") if cidrhost(var.network_cidr, var.first_host_offset + slot) == var.gateway])), "?")} (host number first_host_offset ${var.first_host_offset} + slot): change gateway, or move the nodes with first_host_offset."
  }
}

variable "first_host_offset" {
  description = "Host number of slot 0 (the control plane) inside network_cidr; workers start at +10, GPU workers at +40."
  type        = number
  default     = 10
  nullable    = false

  validation {
    condition     = var.first_host_offset == floor(var.first_host_offset) && var.first_host_offset >= 1
    error_message = "first_host_offset = ${var.first_host_offset} is invalid: use a whole number >= 1 (host number 0 is the network address)."
  }
}

variable "dns_servers" {
  description = "DNS servers written by cloud-init. Empty = use the gateway."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for s in var.dns_servers : can(regex("^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$", s))])
    error_message = "dns_servers has invalid entries ${jsonencode([for s in var.dns_servers : s if !can(regex("^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$", s))])}: each entry must be an IPv4 address like \"1.1.1.1\" (no port, no hostname); leave the list empty to use the gateway."
  }
}

variable "network_bridge" {
  description = "Proxmox bridge the VMs' NIC attaches to."
  type        = string
  default     = "vmbr0"
  nullable    = false

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9_.-]{0,15}$", var.network_bridge))
    error_message = "network_bridge ${jsonencode(var.network_bridge)} is not a valid bridge name: use a Linux interface name of up to 16 characters starting with a letter (letters, digits, '_', '.', '-'), e.g. \"vmbr0\"."
  }
}

variable "vlan_id" {
  description = "VLAN tag of the VMs' NIC; null = untagged."
  type        = number
  default     = null

  validation {
    condition     = var.vlan_id == null ? true : try(var.vlan_id == floor(var.vlan_id) && var.vlan_id >= 1 && var.vlan_id <= 4094, false)
    error_message = "vlan_id = ${jsonencode(var.vlan_id)} is invalid: use a whole number from 1 to 4094, or null for an untagged NIC."
  }
}

# ---------------------------------------------------------------------------------------
# Proxmox IDs and storage
# ---------------------------------------------------------------------------------------

variable "vm_id_base" {
  description = "VM ID of slot 0; node VM ID = vm_id_base + slot. Every node's VM ID must be inside 100-999999999."
  type        = number
  default     = 9100
  nullable    = false

  validation {
    condition     = var.vm_id_base == floor(var.vm_id_base)
    error_message = "vm_id_base = ${var.vm_id_base} is not a whole number: use a whole number such as 9100."
  }

  validation {
    condition = try(
      var.vm_id_base >= 100 &&
      var.vm_id_base + (length(var.gpu_workers) > 0 ? 39 + length(var.gpu_workers) : (var.worker_count > 0 ? 9 + var.worker_count : 0)) <= 999999999,
      true
    )
    error_message = "vm_id_base = ${var.vm_id_base} puts node VM IDs at ${var.vm_id_base}-${try(var.vm_id_base + (length(var.gpu_workers) > 0 ? 39 + length(var.gpu_workers) : (var.worker_count > 0 ? 9 + var.worker_count : 0)), "?")}, outside Proxmox's range 100-999999999: choose a vm_id_base from 100 to ${try(999999999 - (length(var.gpu_workers) > 0 ? 39 + length(var.gpu_workers) : (var.worker_count > 0 ? 9 + var.worker_count : 0)), "?")} (e.g. 9100)."
  }
}

variable "template_vm_id" {
  description = "VM ID of the cloud-init Ubuntu template every node is cloned from (made by `em-infra up --only prepare`)."
  type        = number
  default     = 9000
  nullable    = false

  validation {
    condition     = var.template_vm_id == floor(var.template_vm_id) && var.template_vm_id >= 100 && var.template_vm_id <= 999999999
    error_message = "template_vm_id = ${var.template_vm_id} is invalid: use a whole number from 100 to 999999999 (e.g. 9000)."
  }

  validation {
    condition     = try(!contains([for slot in concat([0], range(10, 10 + var.worker_count), range(40, 40 + length(var.gpu_workers))) : var.vm_id_base + slot], var.template_vm_id), true)
    error_message = "template_vm_id = ${var.template_vm_id} is also the VM ID of node ${try(jsonencode(one([for slot in concat([0], range(10, 10 + var.worker_count), range(40, 40 + length(var.gpu_workers))) : (slot == 0 ? "${var.cluster_name}-cp-1" : slot < 40 ? "${var.cluster_name}-worker-${slot - 9}" : "${var.cluster_name}-gpu-${slot - 39}") if var.vm_id_base + slot == var.template_vm_id])), "?")} (vm_id_base ${var.vm_id_base} + slot): move the template or vm_id_base so the ranges do not overlap."
  }
}

variable "datastore_id" {
  description = "Proxmox storage for the VM disks, EFI disks and cloud-init drives, e.g. \"local-lvm\"."
  type        = string
  default     = "local-lvm"
  nullable    = false

  validation {
    condition     = trimspace(var.datastore_id) != ""
    error_message = "datastore_id is empty: set it to a Proxmox storage that holds VM images, e.g. \"local-lvm\"."
  }
}

# ---------------------------------------------------------------------------------------
# Sizes
# ---------------------------------------------------------------------------------------

variable "control_plane_size" {
  description = "vCPU cores (2-128), memory in MiB (>= 2048) and disk in GiB (10-4096) of the control plane."
  type = object({
    cores     = number
    memory_mb = number
    disk_gb   = number
  })
  default  = { cores = 2, memory_mb = 4096, disk_gb = 32 }
  nullable = false

  validation {
    condition     = try(var.control_plane_size.cores == floor(var.control_plane_size.cores) && var.control_plane_size.cores >= 2 && var.control_plane_size.cores <= 128, false)
    error_message = "control_plane_size.cores = ${jsonencode(var.control_plane_size.cores)} is invalid: the control plane needs a whole number of cores from 2 to 128."
  }

  validation {
    condition     = try(var.control_plane_size.memory_mb == floor(var.control_plane_size.memory_mb) && var.control_plane_size.memory_mb >= 2048, false)
    error_message = "control_plane_size.memory_mb = ${jsonencode(var.control_plane_size.memory_mb)} is too small: the k3s server needs a whole number >= 2048 (MiB, e.g. 4096)."
  }

  validation {
    condition     = try(var.control_plane_size.disk_gb == floor(var.control_plane_size.disk_gb) && var.control_plane_size.disk_gb >= 10 && var.control_plane_size.disk_gb <= 4096, false)
    error_message = "control_plane_size.disk_gb = ${jsonencode(var.control_plane_size.disk_gb)} is invalid: use a whole number of GiB from 10 to 4096 (never below the template's disk)."
  }
}

variable "worker_size" {
  description = "vCPU cores (1-128), memory in MiB (>= 1024) and disk in GiB (10-4096) of each plain worker."
  type = object({
    cores     = number
    memory_mb = number
    disk_gb   = number
  })
  default  = { cores = 2, memory_mb = 4096, disk_gb = 32 }
  nullable = false

  validation {
    condition     = try(var.worker_size.cores == floor(var.worker_size.cores) && var.worker_size.cores >= 1 && var.worker_size.cores <= 128, false)
    error_message = "worker_size.cores = ${jsonencode(var.worker_size.cores)} is invalid: use a whole number of cores from 1 to 128."
  }

  validation {
    condition     = try(var.worker_size.memory_mb == floor(var.worker_size.memory_mb) && var.worker_size.memory_mb >= 1024, false)
    error_message = "worker_size.memory_mb = ${jsonencode(var.worker_size.memory_mb)} is too small: a k3s agent needs a whole number >= 1024 (MiB, e.g. 4096)."
  }

  validation {
    condition     = try(var.worker_size.disk_gb == floor(var.worker_size.disk_gb) && var.worker_size.disk_gb >= 10 && var.worker_size.disk_gb <= 4096, false)
    error_message = "worker_size.disk_gb = ${jsonencode(var.worker_size.disk_gb)} is invalid: use a whole number of GiB from 10 to 4096 (never below the template's disk)."
  }
}

variable "gpu_worker_size" {
  description = "vCPU cores (1-128), memory in MiB (>= 4096) and disk in GiB (10-4096) of each GPU worker."
  type = object({
    cores     = number
    memory_mb = number
    disk_gb   = number
  })
  default  = { cores = 4, memory_mb = 16384, disk_gb = 64 }
  nullable = false

  validation {
    condition     = try(var.gpu_worker_size.cores == floor(var.gpu_worker_size.cores) && var.gpu_worker_size.cores >= 1 && var.gpu_worker_size.cores <= 128, false)
    error_message = "gpu_worker_size.cores = ${jsonencode(var.gpu_worker_size.cores)} is invalid: use a whole number of cores from 1 to 128."
  }

  validation {
    condition     = try(var.gpu_worker_size.memory_mb == floor(var.gpu_worker_size.memory_mb) && var.gpu_worker_size.memory_mb >= 4096, false)
    error_message = "gpu_worker_size.memory_mb = ${jsonencode(var.gpu_worker_size.memory_mb)} is too small: a GPU worker needs a whole number >= 4096 (MiB, e.g. 16384); passthrough pins all of it."
  }

  validation {
    condition     = try(var.gpu_worker_size.disk_gb == floor(var.gpu_worker_size.disk_gb) && var.gpu_worker_size.disk_gb >= 10 && var.gpu_worker_size.disk_gb <= 4096, false)
    error_message = "gpu_worker_size.disk_gb = ${jsonencode(var.gpu_worker_size.disk_gb)} is invalid: use a whole number of GiB from 10 to 4096 (never below the template's disk)."
  }
}

# ---------------------------------------------------------------------------------------
# Access
# ---------------------------------------------------------------------------------------

variable "ssh_user" {
  description = "Linux user cloud-init creates on every VM and Ansible connects as."
  type        = string
  default     = "ubuntu"
  nullable    = false

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_-]{0,31}$", var.ssh_user))
    error_message = "ssh_user ${jsonencode(var.ssh_user)} is not a valid Linux user name: use up to 32 lower-case letters, digits, '_' or '-', starting with a letter or '_' (e.g. \"ubuntu\")."
  }
}

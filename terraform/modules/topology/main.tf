# Derives every node from the validated inputs. No providers, no resources: `terraform test`
# runs this module offline, and the VM modules consume its outputs, so no other file
# computes a name, IP or VM ID.
#
# Slot layout (stable: scaling one group never renumbers another):
#   control plane  slot 0        <cluster_name>-cp-1
#   workers        slots 10-39   <cluster_name>-worker-<i>, i = 1..worker_count
#   GPU workers    slots 40-49   <cluster_name>-gpu-<j>,    j = 1..length(gpu_workers)
# IP    = cidrhost(network_cidr, first_host_offset + slot)
# VM ID = vm_id_base + slot

locals {
  prefix_length = tonumber(split("/", var.network_cidr)[1])

  # Ordered: control plane, workers, GPU workers (slot order), so the *_ips outputs keep it.
  node_list = concat(
    [{
      name     = "${var.cluster_name}-cp-1"
      role     = "control_plane"
      slot     = 0
      size     = var.control_plane_size
      gpu      = null
      gpu_node = null
    }],
    [for i in range(var.worker_count) : {
      name     = "${var.cluster_name}-worker-${i + 1}"
      role     = "worker"
      slot     = 10 + i
      size     = var.worker_size
      gpu      = null
      gpu_node = null
    }],
    [for j, g in var.gpu_workers : {
      name     = "${var.cluster_name}-gpu-${j + 1}"
      role     = "gpu_worker"
      slot     = 40 + j
      size     = var.gpu_worker_size
      gpu      = { mapping = g.mapping, pci_id = g.pci_id }
      gpu_node = g.proxmox_node
    }],
  )

  nodes = {
    for n in local.node_list : n.name => {
      name  = n.name
      role  = n.role
      ip    = cidrhost(var.network_cidr, var.first_host_offset + n.slot)
      vm_id = var.vm_id_base + n.slot
      # Explicit placement wins, then the node holding the GPU, then the default node.
      proxmox_node = coalesce(lookup(var.node_placement, n.name, null), n.gpu_node, var.proxmox_node)
      gpu          = n.gpu
      cores        = n.size.cores
      memory_mb    = n.size.memory_mb
      disk_gb      = n.size.disk_gb
    }
  }

  ips_by_role = {
    for role in ["control_plane", "worker", "gpu_worker"] :
    role => [for n in local.node_list : local.nodes[n.name].ip if n.role == role]
  }
}

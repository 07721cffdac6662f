# Accepted inputs: the derived topology (names, slots, IPs, VM IDs, placement, GPUs).
# `command = plan` is enough: the module has no resources, only outputs.

variables {
  cluster_name      = "lab"
  network_cidr      = "10.231.0.0/24"
  gateway           = "10.231.0.1"
  first_host_offset = 11
  worker_count      = 2
  vm_id_base        = 9100
  template_vm_id    = 9000
  ssh_user          = "root"
}

run "lab_without_gpus" {
  command = plan

  assert {
    condition     = jsonencode(keys(output.nodes)) == jsonencode(["lab-cp-1", "lab-worker-1", "lab-worker-2"])
    error_message = "unexpected node names: ${jsonencode(keys(output.nodes))}"
  }

  assert {
    condition     = jsonencode([output.control_plane_ips, output.worker_ips, output.gpu_worker_ips]) == jsonencode([["10.231.0.11"], ["10.231.0.21", "10.231.0.22"], []])
    error_message = "unexpected IPs: ${jsonencode([output.control_plane_ips, output.worker_ips, output.gpu_worker_ips])}"
  }

  assert {
    condition     = jsonencode([for n in values(output.nodes) : n.vm_id]) == jsonencode([9100, 9110, 9111])
    error_message = "VM IDs must be vm_id_base + slot (0, 10, 11)"
  }

  assert {
    condition     = output.nodes["lab-cp-1"].role == "control_plane" && output.nodes["lab-worker-2"].role == "worker" && output.nodes["lab-cp-1"].gpu == null
    error_message = "unexpected roles or gpu"
  }

  assert {
    condition     = alltrue([for n in values(output.nodes) : n.proxmox_node == "pve"]) && output.proxmox_node == "pve"
    error_message = "every node defaults to proxmox_node \"pve\""
  }

  assert {
    condition     = output.nodes["lab-cp-1"].cores == 2 && output.nodes["lab-cp-1"].memory_mb == 4096 && output.nodes["lab-cp-1"].disk_gb == 32
    error_message = "control plane size must be the default 2/4096/32"
  }

  assert {
    condition     = jsonencode(output.inventory_nodes["lab-worker-1"]) == jsonencode({ gpu = null, ip = "10.231.0.21", name = "lab-worker-1", proxmox_node = "pve", role = "worker", vm_id = 9110 })
    error_message = "inventory_nodes must carry exactly the contract fields"
  }

  assert {
    condition     = output.cluster_name == "lab" && output.ssh_user == "root" && output.prefix_length == 24 && output.gateway == "10.231.0.1"
    error_message = "unexpected scalar outputs"
  }

  assert {
    condition     = jsonencode(output.dns_servers) == jsonencode(["10.231.0.1"])
    error_message = "empty dns_servers must fall back to the gateway"
  }

  assert {
    condition     = output.network_bridge == "vmbr0" && output.vlan_id == null && output.datastore_id == "local-lvm" && output.template_vm_id == 9000
    error_message = "unexpected defaults for bridge, vlan, datastore or template"
  }
}

run "gpus_placement_and_stable_slots" {
  command = plan

  variables {
    worker_count      = 3
    allow_raw_pci_ids = true
    gpu_workers = [
      { mapping = "gpu0" },
      { pci_id = "0000:81:00.0", proxmox_node = "pve2" },
    ]
    node_placement = {
      "lab-worker-3" = "pve3"
      "lab-gpu-2"    = "pve4"
    }
    dns_servers     = ["1.1.1.1", "9.9.9.9"]
    vlan_id         = 20
    gpu_worker_size = { cores = 8, memory_mb = 32768, disk_gb = 100 }
  }

  assert {
    condition     = jsonencode([output.gpu_worker_ips, output.worker_ips]) == jsonencode([["10.231.0.51", "10.231.0.52"], ["10.231.0.21", "10.231.0.22", "10.231.0.23"]])
    error_message = "GPU workers start at slot 40, workers at slot 10, whatever the counts"
  }

  assert {
    condition     = output.nodes["lab-gpu-1"].vm_id == 9140 && output.nodes["lab-gpu-2"].vm_id == 9141 && output.nodes["lab-worker-3"].vm_id == 9112
    error_message = "unexpected VM IDs"
  }

  assert {
    condition     = jsonencode(output.nodes["lab-gpu-1"].gpu) == jsonencode({ mapping = "gpu0", pci_id = null }) && jsonencode(output.nodes["lab-gpu-2"].gpu) == jsonencode({ mapping = null, pci_id = "0000:81:00.0" })
    error_message = "gpu must be { mapping, pci_id } with one of them null"
  }

  assert {
    condition     = output.nodes["lab-gpu-1"].role == "gpu_worker" && output.nodes["lab-gpu-1"].cores == 8 && output.nodes["lab-gpu-1"].memory_mb == 32768
    error_message = "GPU workers take gpu_worker_size"
  }

  assert {
    condition = (
      output.nodes["lab-cp-1"].proxmox_node == "pve" &&
      output.nodes["lab-worker-3"].proxmox_node == "pve3" &&
      output.nodes["lab-gpu-1"].proxmox_node == "pve" &&
      output.nodes["lab-gpu-2"].proxmox_node == "pve4"
    )
    error_message = "placement: node_placement, then the GPU entry's proxmox_node, then proxmox_node"
  }

  assert {
    condition     = jsonencode(output.dns_servers) == jsonencode(["1.1.1.1", "9.9.9.9"]) && output.vlan_id == 20
    error_message = "dns_servers and vlan_id pass through"
  }
}

run "gpu_entry_node_is_used_without_placement" {
  command = plan

  variables {
    gpu_workers = [{ mapping = "gpu0", proxmox_node = "pve2" }]
  }

  assert {
    condition     = output.nodes["lab-gpu-1"].proxmox_node == "pve2"
    error_message = "a GPU entry's proxmox_node places its VM"
  }
}

run "smallest_network_and_defaults" {
  command = plan

  # A /30 holds exactly the control plane (host 1) and the gateway (host 2).
  variables {
    cluster_name      = "k3"
    network_cidr      = "192.168.5.4/30"
    gateway           = "192.168.5.6"
    first_host_offset = 1
    worker_count      = 0
    vm_id_base        = 100
    template_vm_id    = 999999999
  }

  assert {
    condition     = jsonencode([output.control_plane_ips, output.worker_ips, keys(output.nodes)]) == jsonencode([["192.168.5.5"], [], ["k3-cp-1"]])
    error_message = "unexpected topology for a /30"
  }

  assert {
    condition     = output.nodes["k3-cp-1"].vm_id == 100 && output.prefix_length == 30
    error_message = "unexpected VM ID or prefix"
  }
}

run "maximum_counts_fit_a_slash_26" {
  command = plan

  # Highest slot is 49: offset 10 + 49 = host 59, well inside a /26 (62 usable).
  variables {
    network_cidr      = "10.0.0.0/26"
    gateway           = "10.0.0.1"
    first_host_offset = 10
    worker_count      = 30
    gpu_workers       = [for i in range(10) : { mapping = "gpu${i}" }]
    vm_id_base        = 999999950
  }

  assert {
    condition     = length(output.nodes) == 41 && output.nodes["lab-gpu-10"].ip == "10.0.0.59" && output.nodes["lab-gpu-10"].vm_id == 999999999
    error_message = "the last slot (49) must map to host 59 and VM ID 999999999"
  }

  assert {
    condition     = output.nodes["lab-worker-30"].ip == "10.0.0.49"
    error_message = "the last worker is slot 39"
  }
}

run "last_node_just_below_broadcast" {
  command = plan

  # /26: host numbers 1-62, 63 is broadcast. Offset 13 + slot 49 = 62 still fits
  # (offset 14 is rejected in rejected.tftest.hcl).
  variables {
    network_cidr      = "10.0.0.0/26"
    gateway           = "10.0.0.1"
    first_host_offset = 13
    worker_count      = 0
    gpu_workers       = [for i in range(10) : { mapping = "gpu${i}" }]
  }

  assert {
    condition     = output.nodes["lab-gpu-10"].ip == "10.0.0.62"
    error_message = "slot 49 must map to host 62"
  }
}

# Rejected inputs: every rule of docs/architecture-freeze.md §1 has at least one run here.
# Each run changes one variable of an otherwise valid topology (the file-level variables) and
# expects exactly that variable's validation to fail.

variables {
  cluster_name      = "lab"
  network_cidr      = "10.231.0.0/24"
  gateway           = "10.231.0.1"
  first_host_offset = 11
  worker_count      = 2
  vm_id_base        = 9100
  template_vm_id    = 9000
}

# DNS label rule
run "cluster_name_uppercase" {
  command = plan

  variables {
    cluster_name = "Lab"
  }

  expect_failures = [var.cluster_name]
}

# DNS label rule
run "cluster_name_underscore" {
  command = plan

  variables {
    cluster_name = "my_lab"
  }

  expect_failures = [var.cluster_name]
}

# 33 characters
run "cluster_name_too_long" {
  command = plan

  variables {
    cluster_name = "a23456789012345678901234567890123"
  }

  expect_failures = [var.cluster_name]
}

# DNS label rule
run "cluster_name_trailing_hyphen" {
  command = plan

  variables {
    cluster_name = "lab-"
  }

  expect_failures = [var.cluster_name]
}

# 2 characters minimum
run "cluster_name_one_char" {
  command = plan

  variables {
    cluster_name = "l"
  }

  expect_failures = [var.cluster_name]
}

# Proxmox node name rule
run "proxmox_node_invalid" {
  command = plan

  variables {
    proxmox_node = "pve_1"
  }

  expect_failures = [var.proxmox_node]
}

# keys must be derived node names
run "node_placement_unknown_key" {
  command = plan

  variables {
    node_placement = { "lab-worker-3" = "pve" }
  }

  expect_failures = [var.node_placement]
}

# values are Proxmox node names
run "node_placement_invalid_node" {
  command = plan

  variables {
    node_placement = { "lab-worker-1" = "-pve" }
  }

  expect_failures = [var.node_placement]
}

# exactly 1
run "control_plane_count_three" {
  command = plan

  variables {
    control_plane_count = 3
  }

  expect_failures = [var.control_plane_count]
}

# exactly 1
run "control_plane_count_zero" {
  command = plan

  variables {
    control_plane_count = 0
  }

  expect_failures = [var.control_plane_count]
}

# 0-30
run "worker_count_negative" {
  command = plan

  variables {
    worker_count = -1
  }

  expect_failures = [var.worker_count]
}

# whole number
run "worker_count_fraction" {
  command = plan

  variables {
    worker_count = 2.5
  }

  expect_failures = [var.worker_count]
}

# 0-30
run "worker_count_too_many" {
  command = plan

  variables {
    worker_count = 31
  }

  expect_failures = [var.worker_count]
}

# at most 10
run "gpu_workers_too_many" {
  command = plan

  variables {
    gpu_workers  = [for i in range(11) : { mapping = "gpu${i}" }]
    network_cidr = "10.231.0.0/16"
  }

  expect_failures = [var.gpu_workers]
}

# exactly one of mapping or pci_id
run "gpu_both_mapping_and_pci_id" {
  command = plan

  variables {
    allow_raw_pci_ids = true
    gpu_workers       = [{ mapping = "gpu0", pci_id = "0000:01:00.0" }]
  }

  expect_failures = [var.gpu_workers]
}

# exactly one of mapping or pci_id
run "gpu_neither_mapping_nor_pci_id" {
  command = plan

  variables {
    gpu_workers = [{ proxmox_node = "pve" }]
  }

  expect_failures = [var.gpu_workers]
}

# mapping name format
run "gpu_mapping_invalid" {
  command = plan

  variables {
    gpu_workers = [{ mapping = "0gpu" }]
  }

  expect_failures = [var.gpu_workers]
}

# BDF must be lower case
run "gpu_pci_id_upper_case" {
  command = plan

  variables {
    allow_raw_pci_ids = true
    gpu_workers       = [{ pci_id = "0000:0A:00.0" }]
  }

  expect_failures = [var.gpu_workers]
}

# BDF needs the domain
run "gpu_pci_id_without_domain" {
  command = plan

  variables {
    allow_raw_pci_ids = true
    gpu_workers       = [{ pci_id = "01:00.0" }]
  }

  expect_failures = [var.gpu_workers]
}

# pci_id only with allow_raw_pci_ids
run "gpu_pci_id_without_opt_in" {
  command = plan

  variables {
    gpu_workers = [{ pci_id = "0000:01:00.0" }]
  }

  expect_failures = [var.gpu_workers]
}

# no mapping twice
run "gpu_duplicate_mapping" {
  command = plan

  variables {
    gpu_workers = [{ mapping = "gpu0" }, { mapping = "gpu0" }]
  }

  expect_failures = [var.gpu_workers]
}

# no pci_id twice
run "gpu_duplicate_pci_id" {
  command = plan

  variables {
    allow_raw_pci_ids = true
    gpu_workers       = [{ pci_id = "0000:01:00.0" }, { pci_id = "0000:01:00.0" }]
  }

  expect_failures = [var.gpu_workers]
}

# Proxmox node name rule
run "gpu_proxmox_node_invalid" {
  command = plan

  variables {
    gpu_workers = [{ mapping = "gpu0", proxmox_node = "pve 2" }]
  }

  expect_failures = [var.gpu_workers]
}

# not a CIDR
run "network_cidr_syntax" {
  command = plan

  variables {
    network_cidr = "10.231.0/24"
  }

  expect_failures = [var.network_cidr]
}

# not a CIDR
run "network_cidr_no_prefix" {
  command = plan

  variables {
    network_cidr = "10.231.0.0"
  }

  expect_failures = [var.network_cidr]
}

# not a CIDR
run "network_cidr_octet_out_of_range" {
  command = plan

  variables {
    network_cidr = "10.231.256.0/24"
  }

  expect_failures = [var.network_cidr]
}

# IPv4 only
run "network_cidr_ipv6" {
  command = plan

  variables {
    network_cidr = "fd00::/64"
  }

  expect_failures = [var.network_cidr]
}

# prefix 8-30
run "network_cidr_prefix_31" {
  command = plan

  variables {
    network_cidr = "10.231.0.0/31"
  }

  expect_failures = [var.network_cidr]
}

# prefix 8-30
run "network_cidr_prefix_7" {
  command = plan

  variables {
    network_cidr = "10.0.0.0/7"
  }

  expect_failures = [var.network_cidr]
}

# offset 11 + slot 11 = host 22 > 14 usable in a /28
run "network_cidr_too_small_for_workers" {
  command = plan

  variables {
    network_cidr = "10.231.0.0/28"
  }

  expect_failures = [var.network_cidr]
}

# host 63 is the broadcast address of a /26
run "network_cidr_last_node_on_broadcast" {
  command = plan

  variables {
    network_cidr      = "10.0.0.0/26"
    gateway           = "10.0.0.1"
    first_host_offset = 14
    worker_count      = 0
    gpu_workers       = [for i in range(10) : { mapping = "gpu${i}" }]
  }

  expect_failures = [var.network_cidr]
}

# IPv4 syntax
run "gateway_not_an_address" {
  command = plan

  variables {
    gateway = "10.231.0.1/24"
  }

  expect_failures = [var.gateway]
}

# IPv4 syntax
run "gateway_leading_zero" {
  command = plan

  variables {
    gateway = "10.231.0.01"
  }

  expect_failures = [var.gateway]
}

# inside network_cidr
run "gateway_outside_cidr" {
  command = plan

  variables {
    gateway = "10.231.1.1"
  }

  expect_failures = [var.gateway]
}

# not the network address
run "gateway_network_address" {
  command = plan

  variables {
    gateway = "10.231.0.0"
  }

  expect_failures = [var.gateway]
}

# not the broadcast address
run "gateway_broadcast_address" {
  command = plan

  variables {
    gateway = "10.231.0.255"
  }

  expect_failures = [var.gateway]
}

# not a node IP
run "gateway_is_control_plane_ip" {
  command = plan

  variables {
    gateway = "10.231.0.11"
  }

  expect_failures = [var.gateway]
}

# not a node IP
run "gateway_is_worker_ip" {
  command = plan

  variables {
    gateway = "10.231.0.22"
  }

  expect_failures = [var.gateway]
}

# not a node IP
run "gateway_is_gpu_worker_ip" {
  command = plan

  variables {
    gateway     = "10.231.0.51"
    gpu_workers = [{ mapping = "gpu0" }]
  }

  expect_failures = [var.gateway]
}

# whole number >= 1
run "first_host_offset_zero" {
  command = plan

  variables {
    first_host_offset = 0
  }

  expect_failures = [var.first_host_offset]
}

# whole number >= 1
run "first_host_offset_fraction" {
  command = plan

  variables {
    first_host_offset = 1.5
  }

  expect_failures = [var.first_host_offset]
}

# IPv4 addresses only
run "dns_server_invalid" {
  command = plan

  variables {
    dns_servers = ["1.1.1.1", "dns.example.com"]
  }

  expect_failures = [var.dns_servers]
}

# interface name
run "network_bridge_invalid" {
  command = plan

  variables {
    network_bridge = "vmbr 0"
  }

  expect_failures = [var.network_bridge]
}

# 16 characters maximum
run "network_bridge_too_long" {
  command = plan

  variables {
    network_bridge = "vmbr0123456789012"
  }

  expect_failures = [var.network_bridge]
}

# 1-4094
run "vlan_id_zero" {
  command = plan

  variables {
    vlan_id = 0
  }

  expect_failures = [var.vlan_id]
}

# 1-4094
run "vlan_id_5000" {
  command = plan

  variables {
    vlan_id = 5000
  }

  expect_failures = [var.vlan_id]
}

# whole number
run "vlan_id_fraction" {
  command = plan

  variables {
    vlan_id = 10.5
  }

  expect_failures = [var.vlan_id]
}

# whole number
run "vm_id_base_fraction" {
  command = plan

  variables {
    vm_id_base = 9100.5
  }

  expect_failures = [var.vm_id_base]
}

# VM IDs from 100
run "vm_id_base_below_100" {
  command = plan

  variables {
    vm_id_base = 99
  }

  expect_failures = [var.vm_id_base]
}

# lab-worker-2 = base + 11 > 999999999
run "vm_id_base_last_node_above_max" {
  command = plan

  variables {
    vm_id_base = 999999990
  }

  expect_failures = [var.vm_id_base]
}

# 100-999999999
run "template_vm_id_below_100" {
  command = plan

  variables {
    template_vm_id = 99
  }

  expect_failures = [var.template_vm_id]
}

# 100-999999999
run "template_vm_id_above_max" {
  command = plan

  variables {
    template_vm_id = 1000000000
  }

  expect_failures = [var.template_vm_id]
}

# whole number
run "template_vm_id_fraction" {
  command = plan

  variables {
    template_vm_id = 9000.5
  }

  expect_failures = [var.template_vm_id]
}

# not any node's VM ID
run "template_vm_id_is_a_node_vm_id" {
  command = plan

  variables {
    template_vm_id = 9110
  }

  expect_failures = [var.template_vm_id]
}

# non-empty
run "datastore_id_empty" {
  command = plan

  variables {
    datastore_id = " "
  }

  expect_failures = [var.datastore_id]
}

# control plane cores >= 2
run "control_plane_cores_one" {
  command = plan

  variables {
    control_plane_size = { cores = 1, memory_mb = 4096, disk_gb = 32 }
  }

  expect_failures = [var.control_plane_size]
}

# control plane memory >= 2048
run "control_plane_memory_512" {
  command = plan

  variables {
    control_plane_size = { cores = 2, memory_mb = 512, disk_gb = 32 }
  }

  expect_failures = [var.control_plane_size]
}

# control plane memory >= 2048 (above the worker minimum)
run "control_plane_memory_1024" {
  command = plan

  variables {
    control_plane_size = { cores = 2, memory_mb = 1024, disk_gb = 32 }
  }

  expect_failures = [var.control_plane_size]
}

# disk 10-4096
run "control_plane_disk_5" {
  command = plan

  variables {
    control_plane_size = { cores = 2, memory_mb = 4096, disk_gb = 5 }
  }

  expect_failures = [var.control_plane_size]
}

# cores 1-128
run "worker_cores_zero" {
  command = plan

  variables {
    worker_size = { cores = 0, memory_mb = 4096, disk_gb = 32 }
  }

  expect_failures = [var.worker_size]
}

# cores 1-128
run "worker_cores_too_many" {
  command = plan

  variables {
    worker_size = { cores = 129, memory_mb = 4096, disk_gb = 32 }
  }

  expect_failures = [var.worker_size]
}

# memory >= 1024
run "worker_memory_512" {
  command = plan

  variables {
    worker_size = { cores = 2, memory_mb = 512, disk_gb = 32 }
  }

  expect_failures = [var.worker_size]
}

# disk 10-4096
run "worker_disk_too_big" {
  command = plan

  variables {
    worker_size = { cores = 2, memory_mb = 4096, disk_gb = 5000 }
  }

  expect_failures = [var.worker_size]
}

# attributes must be set
run "worker_memory_null" {
  command = plan

  variables {
    worker_size = { cores = 2, memory_mb = null, disk_gb = 32 }
  }

  expect_failures = [var.worker_size]
}

# whole cores
run "gpu_worker_cores_fraction" {
  command = plan

  variables {
    gpu_worker_size = { cores = 2.5, memory_mb = 16384, disk_gb = 64 }
  }

  expect_failures = [var.gpu_worker_size]
}

# GPU worker memory >= 4096
run "gpu_worker_memory_2048" {
  command = plan

  variables {
    gpu_worker_size = { cores = 4, memory_mb = 2048, disk_gb = 64 }
  }

  expect_failures = [var.gpu_worker_size]
}

# disk 10-4096
run "gpu_worker_disk_9" {
  command = plan

  variables {
    gpu_worker_size = { cores = 4, memory_mb = 16384, disk_gb = 9 }
  }

  expect_failures = [var.gpu_worker_size]
}

# Linux user name
run "ssh_user_upper_case" {
  command = plan

  variables {
    ssh_user = "Ubuntu"
  }

  expect_failures = [var.ssh_user]
}

# Linux user name
run "ssh_user_starts_with_digit" {
  command = plan

  variables {
    ssh_user = "1admin"
  }

  expect_failures = [var.ssh_user]
}

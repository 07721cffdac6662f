# expect: vm_id_base
# mistake: Proxmox VM IDs start at 100
cluster_name      = "lab"
network_cidr      = "10.231.0.0/24"
gateway           = "10.231.0.1"
first_host_offset = 11
worker_count      = 2
gpu_workers       = []
ssh_user          = "root"
vm_id_base        = 50
template_vm_id    = 9000

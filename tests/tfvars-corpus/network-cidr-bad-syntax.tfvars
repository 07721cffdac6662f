# expect: network_cidr
# mistake: a CIDR with three octets
cluster_name      = "lab"
network_cidr      = "10.231.0/24"
gateway           = "10.231.0.1"
first_host_offset = 11
worker_count      = 2
gpu_workers       = []
ssh_user          = "root"
vm_id_base        = 9100
template_vm_id    = 9000

# expect: first_host_offset
# mistake: host number 0 is the network address
cluster_name      = "lab"
network_cidr      = "10.231.0.0/24"
gateway           = "10.231.0.1"
first_host_offset = 0
worker_count      = 2
gpu_workers       = []
ssh_user          = "root"
vm_id_base        = 9100
template_vm_id    = 9000

# expect: vm_id_base
# mistake: lab-worker-2 would get VM ID 1000000001
cluster_name      = "lab"
network_cidr      = "10.231.0.0/24"
gateway           = "10.231.0.1"
first_host_offset = 11
worker_count      = 2
gpu_workers       = []
ssh_user          = "root"
vm_id_base        = 999999990
template_vm_id    = 9000

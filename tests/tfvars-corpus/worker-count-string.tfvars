# expect: worker_count
# mistake: a word instead of a number (a type error, not a rule)
cluster_name      = "lab"
network_cidr      = "10.231.0.0/24"
gateway           = "10.231.0.1"
first_host_offset = 11
worker_count      = "two"
gpu_workers       = []
ssh_user          = "root"
vm_id_base        = 9100
template_vm_id    = 9000

# expect: network_cidr
# mistake: a /28 has host numbers 1-14, lab-worker-2 needs host 22 (offset 11 + slot 11)
cluster_name      = "lab"
network_cidr      = "10.231.0.0/28"
gateway           = "10.231.0.1"
first_host_offset = 11
worker_count      = 2
gpu_workers       = []
ssh_user          = "root"
vm_id_base        = 9100
template_vm_id    = 9000

# expect: template_vm_id
# mistake: the template's ID is lab-worker-1's VM ID (9100 + slot 10)
cluster_name      = "lab"
network_cidr      = "10.231.0.0/24"
gateway           = "10.231.0.1"
first_host_offset = 11
worker_count      = 2
gpu_workers       = []
ssh_user          = "root"
vm_id_base        = 9100
template_vm_id    = 9110

# expect: gateway
# mistake: gateway equals lab-cp-1's IP (offset 11 + slot 0)
cluster_name      = "lab"
network_cidr      = "10.231.0.0/24"
gateway           = "10.231.0.11"
first_host_offset = 11
worker_count      = 2
gpu_workers       = []
ssh_user          = "root"
vm_id_base        = 9100
template_vm_id    = 9000

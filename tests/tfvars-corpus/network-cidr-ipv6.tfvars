# expect: network_cidr
# mistake: an IPv6 network (the VMs get IPv4 only)
cluster_name      = "lab"
network_cidr      = "fd00:231::/64"
gateway           = "10.231.0.1"
first_host_offset = 11
worker_count      = 2
gpu_workers       = []
ssh_user          = "root"
vm_id_base        = 9100
template_vm_id    = 9000

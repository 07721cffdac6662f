//! Verification through the Kubernetes API (kube-rs), using the kubeconfig configure fetched.

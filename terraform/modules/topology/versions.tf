terraform {
  # 1.9 is the first release whose validation rules may refer to other variables; the
  # cross-variable rules (gateway vs. node IPs, VM IDs vs. the template, ...) need it.
  required_version = ">= 1.9"

  # No required_providers on purpose: this module only computes, so `terraform test`
  # runs it offline.
}

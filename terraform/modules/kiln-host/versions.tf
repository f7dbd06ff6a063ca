terraform {
  # No providers: the module only renders text (templatefile and built-in
  # functions), so it works with any VM resource and runs offline.
  required_version = ">= 1.6.0"
}

terraform {
  # No providers: the module only renders text, so it works with any VM
  # resource (or a GPU box you install by hand) and runs offline.
  required_version = ">= 1.6.0"
}

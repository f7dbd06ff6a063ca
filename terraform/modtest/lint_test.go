package modtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLintTerraform lints every module and example under terraform/, the
// provider's examples included.
func TestLintTerraform(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("..")
	problems, err := LintDir(dir)
	require.NoError(t, err)
	var lines []string
	for _, p := range problems {
		lines = append(lines, p.String())
	}
	require.Empty(t, lines, "terraform/ breaks the module rules (see terraform/modtest/lint.go):\n%s", strings.Join(lines, "\n"))
}

func TestLint(t *testing.T) {
	t.Parallel()

	cases := []struct {
		name string
		src  string
		want []string // substrings of the problems, in order; none: clean
	}{
		{name: "good variable and output", src: `
variable "region" {
  description = "AWS region."
  type        = string
  default     = "us-east-1"
}
variable "db_password" {
  description = "The database password."
  type        = string
  sensitive   = true
}
variable "api_key" {
  description = "Optional key."
  type        = string
  default     = null
  sensitive   = true
}
# not secret: public keys
variable "ssh_authorized_keys" {
  description = "SSH public keys."
  type        = list(string)
  default     = []
}
output "url" {
  description = "The URL."
  value       = "x"
}
output "admin_token" {
  description = "A token."
  value       = "x"
  sensitive   = true
}
`},
		{name: "does not parse", src: `variable "x" {`, want: []string{"does not parse"}},
		{name: "no description or type", src: `variable "x" {}
output "y" { value = 1 }`, want: []string{`variable "x" has no description`, `variable "x" has no type`, `output "y" has no description`}},
		{name: "secret not sensitive", src: `
variable "db_password" {
  description = "d"
  type        = string
}
output "api_key" {
  description = "d"
  value       = "x"
}`, want: []string{`variable "db_password" looks secret`, `output "api_key" looks secret`}},
		{name: "secret with a default", src: `
variable "token" {
  description = "d"
  type        = string
  sensitive   = true
  default     = "hunter2"
}`, want: []string{`secret variable "token" has a default`}},
		{name: "policy document", src: `
data "aws_iam_policy_document" "p" {
  statement {
    actions = ["s3:GetObject"]
  }
  statement {
    actions   = ["s3:*"]
    resources = ["arn:aws:s3:::b"]
  }
  statement {
    # CreateNetworkInterface cannot be scoped to a resource.
    actions   = ["ec2:CreateNetworkInterface"]
    resources = ["*"]
  }
  statement {
    actions   = ["logs:*"]
    resources = ["arn:aws:logs:*:*:log-group:/aws/lambda/kiln:*"]
  }
  statement {
    actions   = ["s3:Get*"] # reads only, of one bucket's objects
    resources = ["arn:aws:s3:::b/*"]
  }
  statement {
    actions   = ["s3:ListBucket"]
    resources = ["*"]
  }
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
  dynamic "statement" {
    for_each = [1]
    content {
      actions   = ["lambda:*"]
      resources = ["arn:aws:lambda:us-east-1:1:function:kiln"]
    }
  }
}`, want: []string{`names no resources`, `IAM actions "s3:*"`, `IAM actions "logs:*"`, `IAM resources "*"`, `IAM actions "lambda:*"`}},
		{name: "jsonencode policy", src: `
resource "aws_iam_role_policy" "p" {
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      { Effect = "Allow", Action = ["sqs:*"], Resource = aws_sqs_queue.q.arn },
      { Effect = "Allow", Action = "sqs:SendMessage" },
      {
        Effect = "Allow"
        # Lambda's logging needs these on its own group.
        Action   = ["logs:*"]
        Resource = "*"
      },
    ]
  })
}
resource "aws_iam_role" "r" {
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Action = "sts:AssumeRole", Principal = { Service = "lambda.amazonaws.com" } }]
  })
}`, want: []string{`IAM Action "sqs:*"`, `names no Resource`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			problems := Lint("test.tf", []byte(tc.src))
			require.Len(t, problems, len(tc.want), "%v", problems)
			for i, w := range tc.want {
				require.Contains(t, problems[i].Message, w)
			}
		})
	}
}

func TestLintRefs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := `
variable "name" {
  description = "d"
  type        = string
}
locals {
  bucket = "${var.name}-bucket"
}
data "aws_iam_policy_document" "p" {
  dynamic "statement" {
    for_each = [1]
    content {
      actions   = ["s3:GetObject"]
      resources = ["${aws_s3_bucket.b.arn}/*", statement.value]
    }
  }
}
resource "aws_s3_bucket" "b" {
  bucket = local.bucket
  tags   = { for k, v in var.tags : k => v }
}
output "x" {
  description = "d"
  value       = [local.missing, data.aws_iam_policy_document.q.json, aws_sqs_queue.q.url, module.m.out, path.module, aws_s3_bucket.b.id]
}
`
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.tf"), []byte(src), 0o644))
	problems, err := LintDir(dir)
	require.NoError(t, err)
	var msgs []string
	for _, p := range problems {
		msgs = append(msgs, p.Message)
	}
	require.ElementsMatch(t, []string{
		"reference to undeclared var.tags",
		"reference to undeclared local.missing",
		"reference to undeclared data.aws_iam_policy_document.q",
		"reference to undeclared aws_sqs_queue.q",
		"reference to undeclared module.m",
	}, msgs)
}

func TestLintModuleCalls(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "modules", "m"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "root"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "modules", "m", "main.tf"), []byte(`
variable "a" {
  description = "d"
  type        = string
}
variable "b" {
  description = "d"
  type        = string
  default     = "x"
}
output "o" {
  description = "d"
  value       = var.a
}
`), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "root", "main.tf"), []byte(`
module "m" {
  source = "../modules/m"
  count  = 1
  b      = "y"
  c      = "z"
}
module "gone" {
  source = "../modules/gone"
}
output "good" {
  description = "d"
  value       = module.m[0].o
}
output "bad" {
  description = "d"
  value       = module.m[0].nope
}
`), 0o644))
	problems, err := LintDir(dir)
	require.NoError(t, err)
	var msgs []string
	for _, p := range problems {
		msgs = append(msgs, p.Message)
	}
	require.ElementsMatch(t, []string{
		`module "m" has no variable "c"`,
		`module "m" needs variable "a"`,
		`module "gone": no module at ../modules/gone`,
		`module "m" has no output "nope"`,
	}, msgs)
}

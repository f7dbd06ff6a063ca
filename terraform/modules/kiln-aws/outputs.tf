output "api_base_url" {
  description = "kiln's OpenAI-compatible base URL (public_url/v1)."
  value       = module.host.api_base_url
}

output "api_public_ip" {
  description = "Elastic IP of the API instance: point public_url's host name at it (DNS A record) before Caddy asks Let's Encrypt. Null with localstack."
  value       = local.aws ? aws_eip.api[0].public_ip : null
}

output "bucket" {
  description = "kiln's S3 bucket; objects under inbox_prefix become files."
  value       = aws_s3_bucket.kiln.bucket
}

output "inbox_upload_command" {
  description = "How to drop a file into the inbox."
  value       = "aws s3 cp requests.jsonl s3://${aws_s3_bucket.kiln.bucket}/${var.inbox_prefix}requests.jsonl"
}

output "inbox_queue_url" {
  description = "SQS queue of the inbox's S3 notifications (KILN_INBOX_SQS_URL)."
  value       = aws_sqs_queue.inbox.url
}

output "inbox_dlq_url" {
  description = "Dead-letter queue of inbox messages kiln could not use."
  value       = aws_sqs_queue.inbox_dlq.url
}

output "lambda_function_arn" {
  description = "ARN of the functions' Lambda. Null without lambda_zip."
  value       = local.lambda ? aws_lambda_function.kiln[0].arn : null
}

output "database_endpoint" {
  description = "RDS endpoint (host:port). Null with localstack."
  value       = local.aws ? aws_db_instance.kiln[0].endpoint : null
}

output "gpu_instance_id" {
  description = "ID of the GPU instance. Null without gpu_instance_type or with localstack."
  value       = local.aws && var.gpu_instance_type != null ? aws_instance.gpu[0].id : null
}

# not secret: a command that prints a key on the host, not a key.
output "first_key_command" {
  description = "Run this on the API instance (ssh admin@api_public_ip) for kiln's first API key."
  value       = module.host.first_key_command
}

output "local_kiln_env" {
  description = "With localstack: the environment for kiln serve on this machine, against LocalStack and database_url (export each, then kiln serve)."
  value = var.localstack ? merge(local.kiln_settings, {
    KILN_DATABASE_URL = local.database_url
    KILN_OBJECT_STORE = local.object_store_url
    AWS_ENDPOINT_URL  = var.localstack_endpoint
  }) : null
  sensitive = true
}

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  region      = data.aws_region.current.name
  bucket      = coalesce(var.bucket_name, "${var.name}-${data.aws_caller_identity.current.account_id}-${local.region}")
  aws         = !var.localstack # the parts LocalStack's free edition does not emulate
  private_ids = length(var.private_subnet_ids) > 0 ? var.private_subnet_ids : var.subnet_ids
  lambda      = var.lambda_zip != null

  database_url = local.aws ? "postgres://kiln:${urlencode(var.db_password)}@${aws_db_instance.kiln[0].endpoint}/kiln?sslmode=require" : var.database_url

  # No keys in the URL: kiln takes the instance profile's (or the
  # function's) credentials through the AWS SDK's chain.
  object_store_url = var.localstack ? "s3://${local.bucket}?endpoint=${replace(var.localstack_endpoint, "/^https?:///", "")}&region=${local.region}&secure=${startswith(var.localstack_endpoint, "https")}" : "s3://${local.bucket}?region=${local.region}"

  kiln_settings = merge(
    {
      KILN_INBOX_PREFIX        = var.inbox_prefix
      KILN_INBOX_SQS_URL       = aws_sqs_queue.inbox.url
      KILN_INBOX_POLL_INTERVAL = "-1s" # the queue alone; its DLQ keeps what fails
      KILN_AWS_REGION          = local.region
    },
    local.lambda ? { KILN_REMOTE_FUNCTIONS = "inbox_import=${aws_lambda_function.kiln[0].arn}" } : {},
  )

  tags = merge({ "kiln:stack" = var.name }, var.tags)
}

# --- S3: the bucket and its inbox's notifications ---------------------------------

resource "aws_s3_bucket" "kiln" {
  bucket        = local.bucket
  force_destroy = var.force_destroy
  tags          = local.tags
}

resource "aws_s3_bucket_public_access_block" "kiln" {
  bucket                  = aws_s3_bucket.kiln.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "kiln" {
  bucket = aws_s3_bucket.kiln.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "kiln" {
  bucket = aws_s3_bucket.kiln.id
  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 2
    }
  }
}

resource "aws_sqs_queue" "inbox_dlq" {
  name                      = "${var.name}-inbox-dlq"
  message_retention_seconds = 1209600 # 14 days, SQS's longest
  sqs_managed_sse_enabled   = true
  tags                      = local.tags
}

resource "aws_sqs_queue" "inbox" {
  name                       = "${var.name}-inbox"
  visibility_timeout_seconds = 120 # kiln extends it while an import runs
  receive_wait_time_seconds  = 20
  sqs_managed_sse_enabled    = true
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.inbox_dlq.arn
    maxReceiveCount     = var.inbox_max_receive_count
  })
  tags = local.tags
}

resource "aws_sqs_queue_redrive_allow_policy" "inbox_dlq" {
  queue_url = aws_sqs_queue.inbox_dlq.id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.inbox.arn]
  })
}

data "aws_iam_policy_document" "inbox_queue" {
  statement {
    sid       = "BucketNotifications"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.inbox.arn]
    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_s3_bucket.kiln.arn]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_sqs_queue_policy" "inbox" {
  queue_url = aws_sqs_queue.inbox.id
  policy    = data.aws_iam_policy_document.inbox_queue.json
}

resource "aws_s3_bucket_notification" "inbox" {
  bucket = aws_s3_bucket.kiln.id
  queue {
    queue_arn     = aws_sqs_queue.inbox.arn
    events        = ["s3:ObjectCreated:*"]
    filter_prefix = var.inbox_prefix
  }
  depends_on = [aws_sqs_queue_policy.inbox]
}

resource "aws_vpc_endpoint" "s3" {
  count             = local.aws && length(var.s3_endpoint_route_table_ids) > 0 ? 1 : 0
  vpc_id            = var.vpc_id
  service_name      = "com.amazonaws.${local.region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = var.s3_endpoint_route_table_ids
  tags              = local.tags
}

# Least privilege, one role per part: kiln serve (EC2), the GPU agent (EC2)
# and the functions (Lambda). Every statement names its resources.

data "aws_iam_policy_document" "assume_ec2" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "assume_lambda" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

# The bucket's objects: what kiln's object store does (put, get, delete,
# multipart uploads and server-side concatenation, presigned URLs).
data "aws_iam_policy_document" "bucket" {
  statement {
    sid       = "Bucket"
    actions   = ["s3:ListBucket", "s3:ListBucketMultipartUploads", "s3:GetBucketLocation"]
    resources = [aws_s3_bucket.kiln.arn]
  }
  statement {
    sid = "Objects"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = ["${aws_s3_bucket.kiln.arn}/*"]
  }
}

data "aws_iam_policy_document" "api" {
  source_policy_documents = [data.aws_iam_policy_document.bucket.json]
  statement {
    sid       = "BucketCORS"
    actions   = ["s3:GetBucketCORS", "s3:PutBucketCORS"] # kiln serve sets the bucket's CORS rules for KILN_CORS_ORIGINS
    resources = [aws_s3_bucket.kiln.arn]
  }
  statement {
    sid = "InboxQueue"
    actions = [
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
      "sqs:GetQueueAttributes",
    ]
    resources = [aws_sqs_queue.inbox.arn]
  }
  dynamic "statement" {
    for_each = local.lambda ? [1] : []
    content {
      sid       = "RemoteFunctions"
      actions   = ["lambda:InvokeFunction"]
      resources = [aws_lambda_function.kiln[0].arn]
    }
  }
}

data "aws_iam_policy_document" "lambda" {
  count                   = local.lambda ? 1 : 0
  source_policy_documents = [data.aws_iam_policy_document.bucket.json]
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.lambda[0].arn}:*"]
  }
  dynamic "statement" {
    for_each = local.aws ? [1] : []
    content {
      # A function in a VPC makes its network interfaces itself; EC2 does
      # not let these actions be scoped to resources, so "*" is required
      # (as in AWS's AWSLambdaVPCAccessExecutionRole).
      sid = "VPCNetworkInterfaces"
      actions = [
        "ec2:CreateNetworkInterface",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DeleteNetworkInterface",
        "ec2:AssignPrivateIpAddresses",
        "ec2:UnassignPrivateIpAddresses",
      ]
      resources = ["*"]
    }
  }
}

resource "aws_iam_role" "api" {
  count              = local.aws ? 1 : 0
  name               = "${var.name}-api"
  assume_role_policy = data.aws_iam_policy_document.assume_ec2.json
  tags               = local.tags
}

resource "aws_iam_role_policy" "api" {
  count  = local.aws ? 1 : 0
  name   = "kiln-serve"
  role   = aws_iam_role.api[0].id
  policy = data.aws_iam_policy_document.api.json
}

resource "aws_iam_instance_profile" "api" {
  count = local.aws ? 1 : 0
  name  = "${var.name}-api"
  role  = aws_iam_role.api[0].name
}

resource "aws_iam_role" "gpu" {
  count              = local.aws && var.gpu_instance_type != null ? 1 : 0
  name               = "${var.name}-gpu"
  assume_role_policy = data.aws_iam_policy_document.assume_ec2.json
  tags               = local.tags
}

resource "aws_iam_role_policy" "gpu" {
  count  = local.aws && var.gpu_instance_type != null ? 1 : 0
  name   = "kiln-agent"
  role   = aws_iam_role.gpu[0].id
  policy = data.aws_iam_policy_document.bucket.json
}

resource "aws_iam_instance_profile" "gpu" {
  count = local.aws && var.gpu_instance_type != null ? 1 : 0
  name  = "${var.name}-gpu"
  role  = aws_iam_role.gpu[0].name
}

resource "aws_iam_role" "lambda" {
  count              = local.lambda ? 1 : 0
  name               = "${var.name}-lambda"
  assume_role_policy = data.aws_iam_policy_document.assume_lambda.json
  tags               = local.tags
}

resource "aws_iam_role_policy" "lambda" {
  count  = local.lambda ? 1 : 0
  name   = "kiln-functions"
  role   = aws_iam_role.lambda[0].id
  policy = data.aws_iam_policy_document.lambda[0].json
}

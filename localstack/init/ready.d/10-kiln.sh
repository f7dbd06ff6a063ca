#!/usr/bin/env bash
# LocalStack init hook (ready stage): makes what kiln's AWS flavour needs, as
# an operator would on AWS. It runs inside the LocalStack container, where
# awslocal points the AWS CLI at LocalStack.
#
#   bucket     kiln                     kiln's objects; inbox/ is the inbox
#   queue      kiln-inbox               the bucket's notifications of inbox/
#   queue      kiln-inbox-dlq           where messages go after 3 receives
#   topic      kiln-inbox-topic         an SNS topic subscribed to kiln-inbox
#                                       (publish S3-shaped JSON to it to try
#                                       the SNS-wrapped path)
#   role       kiln-lambda              the function's execution role
#   function   kiln                     cmd/kiln-lambda, from make lambda's zip
#
# It is idempotent: LocalStack may run it again after a restart with
# persistence.
set -euo pipefail

region=us-east-1
account=000000000000
bucket=kiln
queue=kiln-inbox
dlq=kiln-inbox-dlq

log() { echo "kiln-init: $*"; }

awslocal s3api head-bucket --bucket "$bucket" 2>/dev/null || awslocal s3api create-bucket --bucket "$bucket"

dlq_url="$(awslocal sqs create-queue --queue-name "$dlq" --query QueueUrl --output text)"
dlq_arn="arn:aws:sqs:$region:$account:$dlq"
queue_url="$(awslocal sqs create-queue --queue-name "$queue" --query QueueUrl --output text \
	--attributes "{\"VisibilityTimeout\":\"60\",\"RedrivePolicy\":\"{\\\"deadLetterTargetArn\\\":\\\"$dlq_arn\\\",\\\"maxReceiveCount\\\":\\\"3\\\"}\"}")"
queue_arn="arn:aws:sqs:$region:$account:$queue"
log "queues $queue_url (dead letters: $dlq_url)"

# On AWS the queue's policy must let S3 (and SNS) send to it.
policy="{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":{\"Service\":[\"s3.amazonaws.com\",\"sns.amazonaws.com\"]},\"Action\":\"sqs:SendMessage\",\"Resource\":\"$queue_arn\"}]}"
awslocal sqs set-queue-attributes --queue-url "$queue_url" \
	--attributes "{\"Policy\":$(printf '%s' "$policy" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()))')}"

awslocal s3api put-bucket-notification-configuration --bucket "$bucket" --notification-configuration "{
  \"QueueConfigurations\": [{
    \"Id\": \"kiln-inbox\",
    \"QueueArn\": \"$queue_arn\",
    \"Events\": [\"s3:ObjectCreated:*\"],
    \"Filter\": {\"Key\": {\"FilterRules\": [{\"Name\": \"prefix\", \"Value\": \"inbox/\"}]}}
  }]
}"
log "bucket $bucket notifies $queue of inbox/"

topic_arn="$(awslocal sns create-topic --name kiln-inbox-topic --query TopicArn --output text)"
awslocal sns subscribe --topic-arn "$topic_arn" --protocol sqs --notification-endpoint "$queue_arn" >/dev/null
log "topic $topic_arn feeds $queue"

case "$(uname -m)" in
x86_64) arch=amd64 lambda_arch=x86_64 ;;
aarch64 | arm64) arch=arm64 lambda_arch=arm64 ;;
*) log "unknown machine $(uname -m)"; exit 1 ;;
esac
zip="${KILN_LAMBDA_ZIP_DIR:-/kiln-bin}/kiln-lambda-$arch.zip"
if [[ ! -f $zip ]]; then
	log "no $zip: run make lambda first"
	exit 1
fi

role_arn="arn:aws:iam::$account:role/kiln-lambda"
awslocal iam get-role --role-name kiln-lambda >/dev/null 2>&1 ||
	awslocal iam create-role --role-name kiln-lambda \
		--assume-role-policy-document '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}' >/dev/null

env_vars="Variables={KILN_DATABASE_URL=postgres://kiln:kiln@postgres:5432/kiln?sslmode=disable,KILN_OBJECT_STORE=s3://$bucket?endpoint=localstack:4566&secure=false&region=$region,KILN_INBOX_PREFIX=inbox/}"
if awslocal lambda get-function --function-name kiln >/dev/null 2>&1; then
	awslocal lambda update-function-code --function-name kiln --zip-file "fileb://$zip" >/dev/null
else
	awslocal lambda create-function --function-name kiln --runtime provided.al2023 --handler bootstrap \
		--architectures "$lambda_arch" --timeout 60 --memory-size 512 --role "$role_arn" \
		--zip-file "fileb://$zip" --environment "$env_vars" >/dev/null
fi
awslocal lambda wait function-active-v2 --function-name kiln
log "function kiln ($lambda_arch) from $zip"

touch /tmp/kiln-init-done
log "ready"

"""Create every AWS resource the DAGs need, idempotently, on a local AWS endpoint.

Both local stacks run this (``scripts/dev start`` and docker compose's init
service). It reads the same settings as the DAGs (``clean_zone.config``) from
the environment and creates, or leaves alone when they already exist:

* the clean-zone bucket: versioning on, all four Block Public Access
  settings, default encryption (as MWAA and our deploy checks ask);
* the SNS failure topic;
* the alerts inbox: an SQS queue subscribed to the topic, where a person (or a
  test) reads alerts exactly as they were published;
* the S3 events queue and what feeds it with "object created" events under
  the landing and manifests prefixes: the bucket's event notifications
  (``clean_zone_event_route`` = ``s3``, the default) or, as the reference
  pipeline did, S3's EventBridge integration and an EventBridge rule
  (``eventbridge``).

On AWS itself use the CloudFormation template under ``infra/``; this script
refuses to run without ``AWS_ENDPOINT_URL`` unless ``--allow-real-aws``.

Exit codes: 0 provisioned, 1 an AWS call failed, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from clean_zone.config import ConfigError, Settings, load_for_parsing


def _say(quiet: bool, message: str) -> None:
    if not quiet:
        print(message, flush=True)


def ensure_bucket(s3: Any, settings: Settings) -> None:
    try:
        s3.head_bucket(Bucket=settings.bucket)
    except ClientError:
        kwargs: dict[str, Any] = {"Bucket": settings.bucket}
        if settings.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": settings.region}
        s3.create_bucket(**kwargs)
    s3.put_bucket_versioning(Bucket=settings.bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_public_access_block(
        Bucket=settings.bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_encryption(
        Bucket=settings.bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )


def ensure_topic(sns: Any, settings: Settings) -> str:
    name = settings.failure_topic_arn.rsplit(":", 1)[-1]
    arn = sns.create_topic(Name=name)["TopicArn"]
    if arn != settings.failure_topic_arn:
        raise ConfigError(
            f"the endpoint created topic {arn}, but clean_zone_failure_topic_arn is "
            f"{settings.failure_topic_arn}: fix the setting's Region or account"
        )
    return arn


def _queue_arn(sqs: Any, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def ensure_queue(sqs: Any, name: str, allow_service: str, source_arn: str) -> tuple[str, str]:
    """Create ``name`` with a policy letting ``allow_service`` send from ``source_arn``."""
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = _queue_arn(sqs, url)
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": f"allow-{allow_service.split('.', maxsplit=1)[0]}",
                "Effect": "Allow",
                "Principal": {"Service": allow_service},
                "Action": "sqs:SendMessage",
                "Resource": arn,
                "Condition": {"ArnLike": {"aws:SourceArn": source_arn}},
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
    return url, arn


def ensure_subscription(sns: Any, topic_arn: str, queue_arn: str) -> None:
    paginator = sns.get_paginator("list_subscriptions_by_topic")
    for page in paginator.paginate(TopicArn=topic_arn):
        if any(s["Endpoint"] == queue_arn for s in page["Subscriptions"]):
            return
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)


def _notification_rule(prefix: str, queue_arn: str) -> dict[str, Any]:
    return {
        "Id": f"clean-zone-{prefix.strip('/')}",
        "QueueArn": queue_arn,
        "Events": ["s3:ObjectCreated:*"],
        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}},
    }


def ensure_notifications(s3: Any, settings: Settings, queue_arn: str) -> None:
    """S3 event notifications for the landing and manifests prefixes, by the configured route."""
    if settings.event_route == "eventbridge":
        wanted: dict[str, Any] = {"EventBridgeConfiguration": {}}
    else:
        prefixes = (settings.landing_prefix, settings.manifests_prefix)
        wanted = {"QueueConfigurations": [_notification_rule(p, queue_arn) for p in prefixes]}
    current = s3.get_bucket_notification_configuration(Bucket=settings.bucket)
    same_queues = sorted(c.get("Id", "") for c in current.get("QueueConfigurations", [])) == sorted(
        c["Id"] for c in wanted.get("QueueConfigurations", [])
    )
    if same_queues and ("EventBridgeConfiguration" in current) == ("EventBridgeConfiguration" in wanted):
        return  # re-putting would send S3's TestEvent again
    s3.put_bucket_notification_configuration(Bucket=settings.bucket, NotificationConfiguration=wanted)


EVENTBRIDGE_RULE = "clean-zone-object-created"


def ensure_eventbridge_rule(events: Any, settings: Settings, queue_arn: str) -> str:
    """The reference's trigger: an EventBridge rule matching "Object Created" under the watched prefixes."""
    prefixes = [{"prefix": settings.landing_prefix}, {"prefix": settings.manifests_prefix}]
    pattern = {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [settings.bucket]}, "object": {"key": prefixes}},
    }
    rule_arn = events.put_rule(Name=EVENTBRIDGE_RULE, EventPattern=json.dumps(pattern), State="ENABLED")[
        "RuleArn"
    ]
    events.put_targets(Rule=EVENTBRIDGE_RULE, Targets=[{"Id": "clean-zone-events-queue", "Arn": queue_arn}])
    return str(rule_arn)


def provision(
    settings: Settings, *, session: boto3.Session | None = None, quiet: bool = False
) -> dict[str, str]:
    """Create or confirm every resource; returns their names and URLs."""
    session = session or boto3.Session(region_name=settings.region)
    s3, sns, sqs = (session.client(name) for name in ("s3", "sns", "sqs"))

    ensure_bucket(s3, settings)
    _say(quiet, f"  bucket        s3://{settings.bucket} (versioned, private, encrypted)")
    topic_arn = ensure_topic(sns, settings)
    _say(quiet, f"  failure topic {topic_arn}")
    alerts_url, alerts_arn = ensure_queue(sqs, settings.alerts_queue_name, "sns.amazonaws.com", topic_arn)
    ensure_subscription(sns, topic_arn, alerts_arn)
    _say(quiet, f"  alerts inbox  {alerts_url} (subscribed to the topic)")
    resources = {
        "bucket": settings.bucket,
        "topic_arn": topic_arn,
        "alerts_queue_url": alerts_url,
    }
    watched = f"object created under {settings.landing_prefix}, {settings.manifests_prefix}"
    if settings.event_route == "eventbridge":
        events = session.client("events")
        rule_arn = f"arn:aws:events:{settings.region}:{settings.account_id}:rule/{EVENTBRIDGE_RULE}"
        events_url, events_arn = ensure_queue(
            sqs, settings.events_queue_name, "events.amazonaws.com", rule_arn
        )
        ensure_notifications(s3, settings, events_arn)
        resources["eventbridge_rule_arn"] = ensure_eventbridge_rule(events, settings, events_arn)
        _say(quiet, f"  S3 events     {events_url} (via EventBridge rule {EVENTBRIDGE_RULE}: {watched})")
    else:
        bucket_arn = f"arn:aws:s3:::{settings.bucket}"
        events_url, events_arn = ensure_queue(sqs, settings.events_queue_name, "s3.amazonaws.com", bucket_arn)
        ensure_notifications(s3, settings, events_arn)
        _say(quiet, f"  S3 events     {events_url} ({watched})")
    resources["events_queue_url"] = events_url
    return resources


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m clean_zone_tools.devstack.provision",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--allow-real-aws",
        action="store_true",
        help="run without AWS_ENDPOINT_URL, against real AWS (prefer infra/ there)",
    )
    parser.add_argument("--json", action="store_true", help="print the resources as JSON on stdout")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    args = parser.parse_args(argv)

    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint and not args.allow_real_aws:
        print(
            "provision: AWS_ENDPOINT_URL is not set; refusing to create resources in real AWS "
            "(use infra/ there, or pass --allow-real-aws)",
            file=sys.stderr,
        )
        return 2
    try:
        settings = load_for_parsing()
    except ConfigError as error:
        print(f"provision: {error}", file=sys.stderr)
        return 2
    _say(args.quiet or args.json, f"Provisioning on {endpoint or 'AWS'} ({settings.region}):")
    try:
        resources = provision(settings, quiet=args.quiet or args.json)
    except ConfigError as error:
        print(f"provision: {error}", file=sys.stderr)
        return 2
    except (ClientError, BotoCoreError) as error:
        print(f"provision: AWS call failed: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(resources, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

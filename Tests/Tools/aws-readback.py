#!/usr/bin/env python3
"""Reads back what an upload left in moto, with boto3 (an independent client), for the tests.

Credentials and endpoint come from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_ENDPOINT_URL, AWS_REGION). moto's signature-checking mode takes the payload hash of a
bodiless request from its x-amz-content-sha256 header, which botocore does not send outside S3:
a before-sign hook adds it (the hash of the empty body), so the signatures verify.

  aws-readback.py ebs-raw SNAPSHOT OUT SIZE    the snapshot's blocks into a raw file of SIZE bytes
  aws-readback.py s3-get BUCKET KEY OUT        the object into OUT
  aws-readback.py image AMI                    DescribeImages, as JSON
  aws-readback.py snapshots                    the account's snapshots: id, state, description, JSON
  aws-readback.py multipart-uploads BUCKET     the unfinished multipart uploads' keys, JSON
"""
import hashlib
import json
import os
import sys

import boto3

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def client(service):
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    c = boto3.client(service, region_name=region)

    def add_content_hash(request, **_):
        if "X-Amz-Content-SHA256" not in request.headers:
            body = request.body or b""
            if isinstance(body, str):
                body = body.encode()
            request.headers["X-Amz-Content-SHA256"] = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256

    c.meta.events.register("before-sign", add_content_hash)
    return c


def main(argv):
    command = argv[1]
    if command == "ebs-raw":
        snapshot, out, size = argv[2], argv[3], int(argv[4])
        ebs = client("ebs")
        blocks, token = [], None
        while True:
            page = ebs.list_snapshot_blocks(SnapshotId=snapshot, **({"NextToken": token} if token else {}))
            blocks += page.get("Blocks", [])
            token = page.get("NextToken")
            if not token:
                break
        block_size = 524288
        with open(out, "wb") as f:
            f.truncate(size)
            for block in blocks:
                data = ebs.get_snapshot_block(SnapshotId=snapshot, BlockIndex=block["BlockIndex"],
                                              BlockToken=block["BlockToken"])["BlockData"].read()
                offset = block["BlockIndex"] * block_size
                f.seek(offset)
                f.write(data[: max(0, min(len(data), size - offset))])
        print(json.dumps({"blocks": len(blocks)}))
    elif command == "s3-get":
        bucket, key, out = argv[2], argv[3], argv[4]
        with open(out, "wb") as f:
            f.write(client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    elif command == "image":
        images = client("ec2").describe_images(ImageIds=[argv[2]])["Images"]
        print(json.dumps(images, default=str))
    elif command == "snapshots":
        snapshots = client("ec2").describe_snapshots(OwnerIds=["self"])["Snapshots"]
        print(json.dumps([{"id": s["SnapshotId"], "state": s["State"], "description": s.get("Description", "")}
                          for s in snapshots]))
    elif command == "multipart-uploads":
        uploads = client("s3").list_multipart_uploads(Bucket=argv[2]).get("Uploads", [])
        print(json.dumps([u["Key"] for u in uploads]))
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv)

"""A small FastAPI service, as the python image's own code: settings come from the environment."""

import os

import boto3
from fastapi import FastAPI
from sqlalchemy import create_engine, text

app = FastAPI(title="orders")
engine = create_engine(os.environ.get("DATABASE_URL", "postgresql+psycopg2://app@db:5432/orders"), pool_pre_ping=True)
s3 = boto3.client("s3", region_name=os.environ.get("AWS_REGION", "eu-west-1"))
BUCKET = os.environ.get("ORDERS_BUCKET", "orders-exports")


@app.get("/healthz")
def healthz() -> dict[str, str]:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return {"status": "ok"}


@app.get("/orders/{order_id}/export")
def export(order_id: int) -> dict[str, str]:
    url = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": f"{order_id}.json"}, ExpiresIn=300)
    return {"url": url}

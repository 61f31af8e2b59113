package ratelimitprocessor

import "go.opentelemetry.io/otel/attribute"

func limitAttr(name string) attribute.KeyValue { return attribute.String("limit", name) }

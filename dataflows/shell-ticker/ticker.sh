#!/bin/sh
# A plain shell pipeline, no node SDK: each line it prints becomes a message on `lines`.
echo "ticker: counting to 20" >&2
seq 1 20 | while read -r i; do
  echo "tick $i"
  sleep 0.1
done

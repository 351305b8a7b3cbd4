#!/usr/bin/env python3
"""Grows a trawl index to N calls by replicating its calls (pyarrow): each
copy is shifted in time past the previous one and gets distinct ids and
connection ids; rows are sorted by timestamp, written as trawl writes
them (1 Mi-row part files, 64 Ki-row row groups, snappy, page index) with
the original Arrow schema, and a manifest listing the parts is written
last. Used by bench/query.sh when REPLICATE_FROM is set: a stand-in for the
gen_index example when it cannot be built, from real dissected calls.

usage: replicate-index.py SRC_INDEX OUT_INDEX CALLS
"""
import json, os, sys
import pyarrow as pa, pyarrow.compute as pc, pyarrow.parquet as pq

src, out, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
man = json.load(open(os.path.join(src, "manifest.json")))
table = pa.concat_tables(pq.read_table(os.path.join(src, p)) for p in man["calls_parts"])
schema = table.schema
table = table.sort_by([("timestamp", "ascending"), ("id", "ascending")])
n = table.num_rows
ts = pc.cast(table["timestamp"], pa.int64())
span = pc.max(ts).as_py() - pc.min(ts).as_py() + 1_000_000
os.makedirs(os.path.join(out, "calls"), exist_ok=True)
os.makedirs(os.path.join(out, "flows"), exist_ok=True)
os.makedirs(os.path.join(out, "payloads"), exist_ok=True)
ROWS_PER_FILE, ROW_GROUP = 1024 * 1024, 64 * 1024
parts, writer, in_file, written, k = [], None, 0, 0, 0
while written < total:
    t = table.slice(0, min(n, total - written))
    cols = {name: t[name] for name in schema.names}
    cols["timestamp"] = pc.cast(pc.add(pc.cast(t["timestamp"], pa.int64()), k * span), schema.field("timestamp").type)
    cols["id"] = pc.binary_join_element_wise(t["id"], pa.scalar(f"r{k}"), "/")
    cols["conn_id"] = pc.add(t["conn_id"], k * 100_000_000)
    t = pa.table([cols[c] for c in schema.names], schema=schema)
    off = 0
    while off < t.num_rows:
        if writer is None:
            rel = f"calls/part-0-{len(parts)}.parquet"
            parts.append(rel)
            writer = pq.ParquetWriter(os.path.join(out, rel), schema, compression="snappy",
                                      write_page_index=True, store_schema=True)
            in_file = 0
        take = min(t.num_rows - off, ROWS_PER_FILE - in_file)
        writer.write_table(t.slice(off, take), row_group_size=ROW_GROUP)
        off += take
        in_file += take
        if in_file >= ROWS_PER_FILE:
            writer.close()
            writer = None
    written += t.num_rows
    k += 1
if writer is not None:
    writer.close()
man.update({
    "source": f"{man['source']} (calls replicated {k}x by bench/replicate-index.py)",
    "calls": written, "flows": 0, "calls_parts": parts, "flows_parts": [], "payload_parts": [],
    "last_ts": man["first_ts"] + (k - 1) * span + (man["last_ts"] - man["first_ts"]),
})
json.dump(man, open(os.path.join(out, "manifest.json"), "w"), indent=2)
print(json.dumps({"calls": written, "copies": k, "parts": len(parts)}))

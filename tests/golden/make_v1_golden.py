"""How the version 1 golden data was made (a record: it ran once, at commit e1ebc1d, the last
commit that wrote container version 1; today's encoder writes version 2, so re-running it
now would not make version 1 streams).

    git checkout e1ebc1d && python tests/golden/make_v1_golden.py   # with ../shared/data/kodak

Wrote ``kodak_sections_v1.json`` (SHA-256 prefixes of every section of the 24 Kodak images
coded by the shipped models at four qualities; ``tests/test_container.py`` checks today's
encoder writes the same sections), and ``v1-*.nmc`` streams of a 100x75 crop of the bundled
kodim23 (RGB and gray) with the SHA-256 of what they decoded to (``v1_golden.json``).
"""
import hashlib, json, sys, glob, os
from PIL import Image
import codec
from codec import container as ct
out = {}
files = sorted(glob.glob("../shared/data/kodak/*.png"))
cases = [("mean-scale-vr", q) for q in (1, 2.5, 4, 8)] + [("mean-scale-small", 4)]
for f in files:
    img = Image.open(f); img.load()
    for m, q in cases:
        d = codec.encode(img, model=m, quality=q, device="cpu")
        c = ct.unpack(d)
        out[f"{os.path.basename(f)}|{m}|{q:g}"] = [hashlib.sha256(s.data).hexdigest()[:16] for s in c.sections]
json.dump(out, open("tests/golden/kodak_sections_v1.json", "w"), indent=0, sort_keys=True)
# golden v1 streams: a 100x75 crop of kodim23 (odd size), rgb and gray, two models
src = Image.open("codec/assets/kodim23.png").convert("RGB").crop((300, 200, 400, 275))
gold = {}
for name, img, m, q in [("v1-vr-q3.25-rgb", src, "mean-scale-vr", 3.25), ("v1-small-q4-gray", src.convert("L"), "mean-scale-small", 4)]:
    d = codec.encode(img, model=m, quality=q, device="cpu")
    open(f"tests/golden/{name}.nmc", "wb").write(d)
    dec = codec.decode(d)
    gold[name] = {"decoded_sha256": hashlib.sha256(dec.tobytes()).hexdigest(), "shape": list(dec.shape),
                  "stream_sha256": hashlib.sha256(d).hexdigest()}
json.dump(gold, open("tests/golden/v1_golden.json", "w"), indent=1)
print(len(out), gold)

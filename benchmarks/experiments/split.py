import sys, time, ctypes, threading, os
sys.path.insert(0, "/work/main")
import numpy as np
from PIL import Image
from rapidfuzz.distance import Levenshtein
from ocr_service.engine.capi_engine import libraries, _VOID, _INT, _INT_P
from benchmarks._images import a4_page
L = libraries(); T = L.tess
for name, (res, args) in {
    "TessBaseAPISetRectangle": (None, [_VOID, _INT, _INT, _INT, _INT]),
    "TessBaseAPIAnalyseLayout": (_VOID, [_VOID]),
    "TessPageIteratorNext": (_INT, [_VOID, _INT]),
    "TessPageIteratorDelete": (None, [_VOID]),
    "TessPageIteratorBlockType": (_INT, [_VOID]),
}.items():
    f = getattr(T, name); f.restype = res; f.argtypes = args
def api():
    h = T.TessBaseAPICreate(); assert T.TessBaseAPIInit2(h, None, b"eng", 1) == 0; T.TessBaseAPISetPageSegMode(h, 3); return h
def setimg(h, px):
    H, W = px.shape; T.TessBaseAPISetImage(h, px.tobytes(), W, H, 1, W); T.TessBaseAPISetSourceResolution(h, 300)
def whole(h, px):
    setimg(h, px); T.TessBaseAPIRecognize(h, None); t = L.take_text(T.TessBaseAPIGetUTF8Text(h)); T.TessBaseAPIClear(h); return t
def boxes(h, px, level):
    setimg(h, px); it = T.TessBaseAPIAnalyseLayout(h); out = []
    c = [ctypes.c_int() for _ in range(4)]
    if it:
        while True:
            if T.TessPageIteratorBoundingBox(it, level, *[ctypes.byref(x) for x in c]):
                out.append(tuple(x.value for x in c))
            if not T.TessPageIteratorNext(it, level): break
        T.TessPageIteratorDelete(it)
    T.TessBaseAPIClear(h); return out
def region(h, px, box, psm):
    setimg(h, px); l, t, r, b = box
    T.TessBaseAPISetRectangle(h, l, t, r - l, b - t); T.TessBaseAPISetPageSegMode(h, psm)
    T.TessBaseAPIRecognize(h, None); s = L.take_text(T.TessBaseAPIGetUTF8Text(h)); T.TessBaseAPIClear(h); T.TessBaseAPISetPageSegMode(h, 3); return s
def fold(s): return " ".join(s.split())
def cer(a, b): return Levenshtein.distance(fold(a), fold(b)) / max(1, len(fold(b)))
apis = [api(), api()]
pages = [("a4", np.asarray(a4_page(1)[0].convert("L")), a4_page(1)[1])]
for name in ("8071_093.3B", "8087_054.3B", "phototest", "eurotext"):
    pages.append((name, np.asarray(Image.open(f"/work/shared/ocr-corpus/{name}.tif").convert("L")), open(f"/work/shared/ocr-corpus/{name}.txt").read()))
for name, px, truth in pages:
    whole(apis[0], px)
    t = time.perf_counter(); wt = whole(apis[0], px); tw = time.perf_counter() - t
    t = time.perf_counter(); bl = boxes(apis[0], px, 0); tb = time.perf_counter() - t
    ln = boxes(apis[0], px, 2)
    print(f"{name} {px.shape} whole {tw*1000:.0f} ms  layout {tb*1000:.0f} ms  blocks {len(bl)} lines {len(ln)}  whole CER {cer(wt, truth):.4f}")
    for level, regions, psm in (("block", bl, 3), ("block6", bl, 6)):
        # two threads share regions in order (greedy by area, contiguous)
        results = [None] * len(regions); idx = [0]; lock = threading.Lock()
        def work(h):
            while True:
                with lock:
                    i = idx[0]; idx[0] += 1
                if i >= len(regions): return
                results[i] = region(h, px, regions[i], psm)
        t = time.perf_counter()
        ths = [threading.Thread(target=work, args=(a,)) for a in apis]
        [x.start() for x in ths]; [x.join() for x in ths]
        tp = time.perf_counter() - t
        st = "\n".join(results)
        print(f"   {level}: parallel {tp*1000:.0f} ms (+layout {tb*1000:.0f}) ratio {(tp+tb)/tw:.2f}  CER {cer(st, truth):.4f} vs-whole {cer(st, wt):.4f}")

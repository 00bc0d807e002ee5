import sys, time, ctypes, threading, os
exec(open("/tmp/split.py").read().split("apis = [api(), api()]")[0])
f = T.TessPageIteratorIsAtFinalElement; f.restype = _INT; f.argtypes = [_VOID, _INT, _INT]
h = api()
for name in ("8087_054.3B", "8071_093.3B"):
    px = np.asarray(Image.open(f"/work/shared/ocr-corpus/{name}.tif").convert("L")); truth = open(f"/work/shared/ocr-corpus/{name}.txt").read()
    setimg(h, px); it = T.TessBaseAPIAnalyseLayout(h); bl = []
    c = [ctypes.c_int() for _ in range(4)]; refs=[ctypes.byref(x) for x in c]
    while True:
        T.TessPageIteratorBoundingBox(it, 0, *refs); bl.append((tuple(x.value for x in c), T.TessPageIteratorBlockType(it)))
        if not T.TessPageIteratorNext(it, 0): break
    T.TessPageIteratorDelete(it); T.TessBaseAPIClear(h)
    wt = whole(h, px)
    parts = []
    for b, ty in bl:
        s = region(h, px, b, 3); parts.append(s)
        print(name, ty, b, repr(fold(s)[:70]))
    print("whole:", repr(fold(wt)[:300]))
    good = "\n".join(p for (b, ty), p in zip(bl, parts) if ty < 9)
    print("CER whole", cer(wt, truth), "split all", cer("\n".join(parts), truth), "split text-only", cer(good, truth))

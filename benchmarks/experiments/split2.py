import sys, time, ctypes, threading, os
exec(open("/tmp/split.py").read().split("apis = [api(), api()]")[0])
def layout(h, px):
    """blocks with their lines: [(blockbox, [linebox...])] in reading order"""
    setimg(h, px); it = T.TessBaseAPIAnalyseLayout(h); out = []
    c = [ctypes.c_int() for _ in range(4)]; refs=[ctypes.byref(x) for x in c]
    if it:
        while True:
            if T.TessPageIteratorBoundingBox(it, 0, *refs):
                out.append((tuple(x.value for x in c), []))
            # lines of this block
            while True:
                if T.TessPageIteratorBoundingBox(it, 2, *refs): out[-1][1].append(tuple(x.value for x in c))
                if T.TessPageIteratorIsAtFinalElement(it, 0, 2): break
                if not T.TessPageIteratorNext(it, 2): break
            if not T.TessPageIteratorNext(it, 0): break
        T.TessPageIteratorDelete(it)
    T.TessBaseAPIClear(h); return out
f = T.TessPageIteratorIsAtFinalElement; f.restype = _INT; f.argtypes = [_VOID, _INT, _INT]
apis = [api(), api()]
pages = [("a4", np.asarray(a4_page(1)[0].convert("L")), a4_page(1)[1])]
for name in ("8071_093.3B", "8087_054.3B", "eurotext"):
    pages.append((name, np.asarray(Image.open(f"/work/shared/ocr-corpus/{name}.tif").convert("L")), open(f"/work/shared/ocr-corpus/{name}.txt").read()))
def groups(lay, target, pad):
    """split blocks into line groups of about `target` lines; each region (box, psm)"""
    regs = []
    for bbox, lines in lay:
        if len(lines) <= target:
            regs.append((bbox, 3 if len(lines) > 1 else 3)); continue
        n = -(-len(lines) // target); size = -(-len(lines) // n)
        for k in range(0, len(lines), size):
            g = lines[k:k+size]
            top = g[0][1] if k == 0 else (lines[k-1][3] + g[0][1]) // 2
            bot = g[-1][3] if k + size >= len(lines) else (g[-1][3] + lines[k+size][1]) // 2
            regs.append(((bbox[0], top, bbox[2], bot), 6))
    return [((max(0,b[0]-pad), max(0,b[1]-pad), b[2]+pad, b[3]+pad), p) for b, p in regs]
for name, px, truth in pages:
    whole(apis[0], px)
    t = time.perf_counter(); wt = whole(apis[0], px); tw = time.perf_counter() - t
    t = time.perf_counter(); lay = layout(apis[0], px); tb = time.perf_counter() - t
    print(f"{name} whole {tw*1000:.0f} ms layout {tb*1000:.0f} ms blocks {len(lay)} lines {sum(len(l) for _,l in lay)} whole CER {cer(wt, truth):.4f}", flush=True)
    for target, pad in ((10, 0), (10, 4), (1000, 0), (1000, 4), (20, 4)):
        regions = groups(lay, target, pad)
        H, W = px.shape
        regions = [((l, t, min(r, W), min(b, H)), p) for (l, t, r, b), p in regions]
        results = [None] * len(regions); idx = [0]; lock = threading.Lock()
        def work(h):
            while True:
                with lock:
                    i = idx[0]; idx[0] += 1
                if i >= len(regions): return
                results[i] = region(h, px, regions[i][0], regions[i][1])
        t = time.perf_counter()
        ths = [threading.Thread(target=work, args=(a,)) for a in apis]
        [x.start() for x in ths]; [x.join() for x in ths]
        tp = time.perf_counter() - t
        st = "\n".join(results)
        print(f"   lines/group {target} pad {pad}: {len(regions)} regions, parallel {tp*1000:.0f} ms ratio {(tp+tb)/tw:.2f}  CER {cer(st, truth):.4f} vs-whole {cer(st, wt):.4f}", flush=True)

import sys, time, ctypes
exec(open("/tmp/split.py").read().split("apis = [api(), api()]")[0])
h = api()
img, truth = a4_page(1); px = np.asarray(img.convert("L"))
t=time.perf_counter(); wt = whole(h, px); tw=time.perf_counter()-t
setimg(h, px); t=time.perf_counter(); it = T.TessBaseAPIAnalyseLayout(h); ta=time.perf_counter()-t; T.TessPageIteratorDelete(it)
t=time.perf_counter(); T.TessBaseAPIRecognize(h, None); tr=time.perf_counter()-t
t2 = L.take_text(T.TessBaseAPIGetUTF8Text(h)); T.TessBaseAPIClear(h)
print(f"whole {tw*1000:.0f} analyse {ta*1000:.0f} then recognize {tr*1000:.0f} same={t2==wt}")
# rectangle coords
setimg(h, px); T.TessBaseAPISetRectangle(h, 0, 1700, 2480, 1808); T.TessBaseAPISetPageSegMode(h, 6); T.TessBaseAPIRecognize(h, None)
s = L.take_text(T.TessBaseAPIGetUTF8Text(h)); hocr = L.take_text(T.TessBaseAPIGetHOCRText(h, 0)); tsv = L.take_text(T.TessBaseAPIGetTsvText(h, 0))
print(repr(s[:200])); print(repr(s[-30:])); print(hocr[:900]); print(tsv[:400])
print(repr(wt[:200]))

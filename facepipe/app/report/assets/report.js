window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images), ok = 0;
  imgs.forEach(function (img) {
    if (img.complete && img.naturalWidth > 0) { ok++; return; }
    var ph = document.createElement("div");
    ph.className = "ph";
    ph.textContent = "crop unreadable";
    img.parentNode.replaceChild(ph, img);
  });
  document.body.setAttribute("data-images-ok", ok + "/" + imgs.length);
});

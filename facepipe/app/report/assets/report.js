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

// Review controls: every "same as", name and "not a face" choice on the cards becomes one
// `facepipe edit OUT ...` command in #fp-command (applied in the order written, all or none).
(function () {
  var panel = document.getElementById("fp-command");
  var listing = document.getElementById("fp-people");
  if (!panel || !listing) return;
  var people = JSON.parse(listing.textContent);
  var edits = Array.prototype.slice.call(document.querySelectorAll(".edit[data-id]"));

  function quote(text) {
    return /^[A-Za-z0-9_\/.:,@%+=-]+$/.test(text) ? text : "'" + text.replace(/'/g, "'\\''") + "'";
  }

  function folder() {
    // the folder this page is in (it may have moved since it was written), else the one recorded
    if (location.protocol === "file:") {
      var path = decodeURIComponent(location.pathname);
      return path.slice(0, path.lastIndexOf("/")) || "/";
    }
    return panel.getAttribute("data-out") || "OUT";
  }

  edits.forEach(function (box) {
    var own = Number(box.getAttribute("data-id"));
    var select = box.querySelector(".fp-merge");
    people.forEach(function (person) {
      if (person.id === own) return;
      var option = document.createElement("option");
      option.value = String(person.id);
      option.textContent = person.name ? person.id + " " + person.name : "identity " + person.id;
      select.appendChild(option);
    });
  });

  function command() {
    var choice = {};
    edits.forEach(function (box) {
      choice[box.getAttribute("data-id")] = {
        same: box.querySelector(".fp-merge").value,
        name: box.querySelector(".fp-rename").value.trim(),
        current: box.querySelector(".fp-rename").getAttribute("data-current"),
        noface: box.querySelector(".fp-noface").checked
      };
    });
    function keeper(id) { // follow "same as" to the identity that stays (stop at a cycle)
      var seen = {};
      while (choice[id] && choice[id].same && !choice[id].noface && !seen[id]) {
        seen[id] = true;
        if (choice[choice[id].same] && choice[choice[id].same].noface) break;
        id = choice[id].same;
      }
      return id;
    }
    var args = [], merges = {}, order = [];
    Object.keys(choice).forEach(function (id) {
      if (choice[id].noface) args.push("--not-a-face", id);
    });
    edits.forEach(function (box) {
      var id = box.getAttribute("data-id"), keep = keeper(id);
      if (choice[id].noface || keep === id) return;
      if (!merges[keep]) { merges[keep] = []; order.push(keep); }
      merges[keep].push(id);
    });
    order.forEach(function (keep) { args.push("--merge", keep); args = args.concat(merges[keep]); });
    var named = {};
    edits.forEach(function (box) {
      var id = box.getAttribute("data-id"), c = choice[id];
      if (c.noface || !c.name || c.name === c.current) return;
      named[keeper(id)] = c.name;
    });
    Object.keys(named).forEach(function (id) { args.push("--rename", id, named[id]); });
    if (!args.length) return "";
    return ["facepipe", "edit", folder()].concat(args).map(quote).join(" ");
  }

  function update() {
    var text = command();
    panel.textContent = text || "no corrections chosen yet";
    panel.setAttribute("data-command", text);
  }
  document.addEventListener("change", update);
  document.addEventListener("input", update);
  var copy = document.getElementById("fp-copy");
  copy.addEventListener("click", function () {
    var text = panel.getAttribute("data-command") || "";
    var done = document.getElementById("fp-copied");
    var range = document.createRange();
    range.selectNodeContents(panel);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    if (navigator.clipboard && text) {
      navigator.clipboard.writeText(text).then(function () { done.textContent = "copied"; },
        function () { done.textContent = "selected: press Ctrl+C"; });
    } else {
      done.textContent = text ? "selected: press Ctrl+C" : "";
    }
  });
  update();
})();

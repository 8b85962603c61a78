// The pipeline list page: create the demo, or a new empty pipeline.
import { post, detailLines } from "./api.js";

const demo = document.getElementById("create-demo");
if (demo) {
  demo.addEventListener("click", async () => {
    const status = document.getElementById("demo-status");
    demo.disabled = true;
    status.textContent = "Creating the demo…";
    try {
      const created = await post("/api/demo", {});
      window.location.assign(`/pipelines/${encodeURIComponent(created.id)}`);
    } catch (err) {
      demo.disabled = false;
      status.textContent = [err.message, ...detailLines(err)].join(" ");
      status.classList.add("error-note");
    }
  });
}

function slug(name) {
  return name.toLowerCase().normalize("NFKD").replace(/[^\w\s-]/g, "").trim().replace(/[\s_]+/g, "-").replace(/-+/g, "-").slice(0, 60);
}

const form = document.getElementById("new-pipeline");
if (form) {
  const name = document.getElementById("new-name");
  const file = document.getElementById("new-file");
  const status = document.getElementById("new-status");
  const fileName = () => `${slug(name.value) || "pipeline"}.pipeline.yaml`;
  name.addEventListener("input", () => {
    file.textContent = name.value.trim() ? `saved as ${fileName()}` : "";
  });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const title = name.value.trim();
    if (!title) return;
    status.textContent = "Creating…";
    status.classList.remove("error-note");
    try {
      const created = await post("/api/pipelines", {
        path: fileName(),
        document: { version: 1, name: title, nodes: [], edges: [] },
      });
      window.location.assign(`/pipelines/${encodeURIComponent(created.id)}`);
    } catch (err) {
      status.textContent = [err.message, ...detailLines(err)].join(" ");
      status.classList.add("error-note");
    }
  });
}
document.body.dataset.ready = "true";

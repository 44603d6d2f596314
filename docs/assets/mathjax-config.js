// MathJax 2 configuration, read by docs/assets/mathjax/MathJax.js (a local copy: nothing loads from the internet).
// Theory and guide pages carry pymdownx.arithmatex's <script type="math/tex"> tags; the tutorials'
// markdown cells carry $...$ and $$...$$, typeset by tex2jax inside .jupyter-wrapper only.
window.MathJax = {
  tex2jax: {
    inlineMath: [["$", "$"], ["\\(", "\\)"]],
    displayMath: [["$$", "$$"], ["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
    ignoreClass: "md-container",
    processClass: "jupyter-wrapper",
  },
  // the only web font the local copy ships
  "HTML-CSS": { availableFonts: [], preferredFont: null, webFont: "STIX-Web", imageFont: null },
  messageStyle: "none",
  showMathMenu: false,
};

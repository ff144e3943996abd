// The entry of the vendored CodeMirror 6 bundle (see VENDORED.md): only what the policy
// editor uses, re-exported from one ES module so the panel loads a single pinned file.
export { EditorState, Compartment } from "@codemirror/state";
export {
  EditorView, keymap, lineNumbers, drawSelection, highlightActiveLine, highlightActiveLineGutter,
  highlightSpecialChars, placeholder,
} from "@codemirror/view";
export { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
export {
  StreamLanguage, HighlightStyle, syntaxHighlighting, bracketMatching, indentOnInput,
} from "@codemirror/language";
export { linter, lintGutter, setDiagnostics, forceLinting } from "@codemirror/lint";
export { tags } from "@lezer/highlight";

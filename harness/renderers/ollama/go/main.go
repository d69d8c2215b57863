// Command ollamarender renders chat prompts with Go's text/template the way Ollama's server does for a
// Modelfile TEMPLATE, so the harness compares real Go template output (not a Python imitation).
//
// Protocol (JSON lines on stdin/stdout): the first line is {"template": "...", "max_output": N,
// "max_memory": N}; the answer is {"ok": true, "vars": [...], "thinking": bool} or {"error": "..."} (then
// the program exits). Every later line is one request {"messages": [...], "tools": [...], "think":
// null|bool|string} answered by {"text": "..."} or {"error": "...", "limit": ""|"output"|"recursion"}, in
// order. A line with an "op" asks for Ollama's output parsing instead (chatparse.go). Limits (the harness's, not Ollama's): a rendering longer than max_output bytes stops with
// limit "output"; more than 1,000 nested {{template}} calls gives limit "recursion";
// max_memory is the Go runtime's soft memory limit (the harness also caps the process's address space).
//
// Reproduced behaviour (Ollama's template package, server/prompt.go and api types, re-implemented here
// from their documented behaviour; standard library only):
//   - the template is parsed with missingkey=zero and the functions json, currentDate, yesterdayDate,
//     toTypeScriptType; a template that names neither .Messages nor .Response gets {{ .Response }} appended;
//   - consecutive messages of one role (tool excepted) are merged with "\n\n"; .System joins every system
//     message with "\n\n";
//   - a template that uses .Messages gets {System, Messages, Tools, Response, Think, ThinkLevel, IsThinkSet};
//     any other template is run once per user/assistant turn with {System, Prompt, Response, ...} and the
//     last run is cut after {{ .Response }} (the legacy path);
//   - tool-call arguments and tool parameter properties range in sorted key order and print as JSON;
//     nested property maps keep their JSON order; unknown JSON-schema keys are dropped as Ollama drops them.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"sort"
	"strings"
	"text/template"
	"text/template/parse"
)

// pinnedDate is what currentDate prints, so reports do not change with the day (harness PINNED_NOW).
const pinnedDate = "2026-01-15"
const pinnedYesterday = "2026-01-14"

// ---------- ordered JSON objects (Ollama keeps insertion order for arguments and nested properties) ----------

type ordered[V any] struct {
	keys []string
	vals map[string]V
}

func (o *ordered[V]) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("expected a JSON object, got %v", tok)
	}
	o.keys, o.vals = nil, map[string]V{}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return err
		}
		key := kt.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return err
		}
		var v V
		if err := json.Unmarshal(raw, &v); err != nil {
			return err
		}
		if _, seen := o.vals[key]; !seen {
			o.keys = append(o.keys, key)
		}
		o.vals[key] = v
	}
	_, err = dec.Token()
	return err
}

func (o *ordered[V]) MarshalJSON() ([]byte, error) {
	if o == nil || o.vals == nil {
		return []byte("null"), nil
	}
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		vb, err := json.Marshal(o.vals[k])
		if err != nil {
			return nil, err
		}
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func (o *ordered[V]) toMap() map[string]V {
	if o == nil || o.vals == nil {
		return nil
	}
	out := make(map[string]V, len(o.keys))
	for k, v := range o.vals {
		out[k] = v
	}
	return out
}

// ---------- tool definitions, as Ollama's api package decodes them ----------

// PropertyType is a JSON-schema "type": one string or a list.
type PropertyType []string

func (pt *PropertyType) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err == nil {
		*pt = []string{s}
		return nil
	}
	var a []string
	if err := json.Unmarshal(data, &a); err != nil {
		return err
	}
	*pt = a
	return nil
}

func (pt PropertyType) MarshalJSON() ([]byte, error) {
	if len(pt) == 1 {
		return json.Marshal(pt[0])
	}
	return json.Marshal([]string(pt))
}

func (pt PropertyType) String() string {
	switch len(pt) {
	case 0:
		return ""
	case 1:
		return pt[0]
	}
	return fmt.Sprintf("%v", []string(pt))
}

// ToolProperty keeps only the JSON-schema keys Ollama knows; others (default, minimum, format…) vanish.
type ToolProperty struct {
	AnyOf       []ToolProperty         `json:"anyOf,omitempty"`
	Type        PropertyType           `json:"type,omitempty"`
	Items       any                    `json:"items,omitempty"`
	Description string                 `json:"description,omitempty"`
	Enum        []any                  `json:"enum,omitempty"`
	Properties  *ordered[ToolProperty] `json:"properties,omitempty"`
	Required    []string               `json:"required,omitempty"`
}

func tsType(t string) string {
	switch t {
	case "string":
		return "string"
	case "number", "integer":
		return "number"
	case "boolean":
		return "boolean"
	case "array":
		return "any[]"
	case "object":
		return "Record<string, any>"
	case "null":
		return "null"
	}
	return "any"
}

// ToTypeScriptType renders the property's type as TypeScript (anyOf and type lists joined with " | ").
func (tp ToolProperty) ToTypeScriptType() string {
	var parts []string
	if len(tp.AnyOf) > 0 {
		for _, a := range tp.AnyOf {
			parts = append(parts, a.ToTypeScriptType())
		}
		return strings.Join(parts, " | ")
	}
	if len(tp.Type) == 0 {
		return "any"
	}
	for _, t := range tp.Type {
		parts = append(parts, tsType(t))
	}
	return strings.Join(parts, " | ")
}

type inParameters struct {
	Type       string                 `json:"type"`
	Defs       any                    `json:"$defs,omitempty"`
	Items      any                    `json:"items,omitempty"`
	Required   []string               `json:"required,omitempty"`
	Properties *ordered[ToolProperty] `json:"properties"`
}

type inTool struct {
	Type     string `json:"type"`
	Items    any    `json:"items,omitempty"`
	Function struct {
		Name        string       `json:"name"`
		Description string       `json:"description,omitempty"`
		Parameters  inParameters `json:"parameters"`
	} `json:"function"`
}

// ---------- what templates see ----------

type templateProperties map[string]ToolProperty

func (t templateProperties) String() string {
	if t == nil {
		return "{}"
	}
	b, _ := json.Marshal(t)
	return string(b)
}

type templateArgs map[string]any

func (t templateArgs) String() string {
	if t == nil {
		return "{}"
	}
	b, _ := json.Marshal(t)
	return string(b)
}

type templateToolFunctionParameters struct {
	Type       string             `json:"type"`
	Defs       any                `json:"$defs,omitempty"`
	Items      any                `json:"items,omitempty"`
	Required   []string           `json:"required,omitempty"`
	Properties templateProperties `json:"properties"`
}

type templateToolFunction struct {
	Name        string                         `json:"name"`
	Description string                         `json:"description"`
	Parameters  templateToolFunctionParameters `json:"parameters"`
}

type templateTool struct {
	Type     string               `json:"type"`
	Items    any                  `json:"items,omitempty"`
	Function templateToolFunction `json:"function"`
}

func (t templateTool) String() string {
	b, _ := json.Marshal(t)
	return string(b)
}

type templateTools []templateTool

func (t templateTools) String() string {
	b, _ := json.Marshal(t)
	return string(b)
}

type templateToolCallFunction struct {
	Index     int
	Name      string
	Arguments templateArgs
}

type templateToolCall struct {
	ID       string
	Function templateToolCallFunction
}

type templateMessage struct {
	Role       string
	Content    string
	Thinking   string
	Images     []string
	ToolCalls  []templateToolCall
	ToolName   string
	ToolCallID string
}

// ---------- requests ----------

type inCall struct {
	ID       string `json:"id"`
	Function struct {
		Index     int    `json:"index"`
		Name      string `json:"name"`
		Arguments string `json:"arguments"` // the JSON object text an OpenAI client sends
	} `json:"function"`
}

type inMessage struct {
	Role       string   `json:"role"`
	Content    string   `json:"content"`
	Thinking   string   `json:"thinking"`
	ToolCalls  []inCall `json:"tool_calls"`
	ToolName   string   `json:"tool_name"`
	ToolCallID string   `json:"tool_call_id"`
}

type request struct {
	Messages []inMessage `json:"messages"`
	Tools    []inTool    `json:"tools"`
	Think    any         `json:"think"`
}

type reply struct {
	OK       bool     `json:"ok,omitempty"`
	Text     *string  `json:"text,omitempty"`
	Error    string   `json:"error,omitempty"`
	Limit    string   `json:"limit,omitempty"`
	Vars     []string `json:"vars,omitempty"`
	Thinking bool     `json:"thinking,omitempty"`
}

// ---------- limits ----------

// errOutputCap stops an execution whose output passed maxOutput bytes (text/template returns it from Execute).
var errOutputCap = errors.New("rendered output passed the size cap")

// cappedBuffer is a bytes.Buffer that refuses to grow past max bytes.
type cappedBuffer struct {
	bytes.Buffer
	max int
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if b.max > 0 && b.Len()+len(p) > b.max {
		return 0, errOutputCap
	}
	return b.Buffer.Write(p)
}

func (b *cappedBuffer) WriteString(s string) (int, error) {
	return b.Write([]byte(s))
}

// limitOf names the harness limit an execution error hit ("" for an ordinary template error).
func limitOf(err error) string {
	switch {
	case errors.Is(err, errOutputCap):
		return "output"
	case strings.Contains(err.Error(), "the harness's recursion cap"),
		strings.Contains(err.Error(), "exceeded maximum template depth"):
		return "recursion"
	}
	return ""
}

// ---------- template parsing ----------

var funcs = template.FuncMap{
	"json": func(v any) string {
		b, _ := json.Marshal(v)
		return string(b)
	},
	"currentDate":   func(args ...string) string { return pinnedDate },
	"yesterdayDate": func(args ...string) string { return pinnedYesterday },
	"toTypeScriptType": func(v any) string {
		switch p := v.(type) {
		case ToolProperty:
			return p.ToTypeScriptType()
		case *ToolProperty:
			if p != nil {
				return p.ToTypeScriptType()
			}
		}
		return "any"
	},
}

// identifiers lists the field and variable names a node uses (lower-cased later).
func identifiers(n parse.Node) ([]string, error) {
	var out []string
	var walk func(parse.Node) error
	walk = func(n parse.Node) error {
		switch n := n.(type) {
		case *parse.ListNode:
			for _, c := range n.Nodes {
				if err := walk(c); err != nil {
					return err
				}
			}
		case *parse.TemplateNode:
			if n.Pipe == nil {
				return errors.New("undefined template specified")
			}
			return walk(n.Pipe)
		case *parse.ActionNode:
			if n.Pipe == nil {
				return errors.New("undefined action in template")
			}
			return walk(n.Pipe)
		case *parse.IfNode:
			return walk(&n.BranchNode)
		case *parse.RangeNode:
			return walk(&n.BranchNode)
		case *parse.WithNode:
			return walk(&n.BranchNode)
		case *parse.BranchNode:
			if n.Pipe == nil {
				return errors.New("undefined branch")
			}
			if err := walk(n.Pipe); err != nil {
				return err
			}
			for _, l := range []*parse.ListNode{n.List, n.ElseList} {
				if l != nil {
					if err := walk(l); err != nil {
						return err
					}
				}
			}
		case *parse.PipeNode:
			for _, c := range n.Cmds {
				for _, a := range c.Args {
					if err := walk(a); err != nil {
						return err
					}
				}
			}
		case *parse.FieldNode:
			out = append(out, n.Ident...)
		case *parse.VariableNode:
			out = append(out, n.Ident...)
		}
		return nil
	}
	err := walk(n)
	return out, err
}

func templateVars(t *template.Template) ([]string, error) {
	set := map[string]bool{}
	for _, tt := range t.Templates() {
		if tt.Tree == nil || tt.Root == nil {
			continue
		}
		for _, n := range tt.Root.Nodes {
			ids, err := identifiers(n)
			for _, id := range ids {
				set[strings.ToLower(id)] = true
			}
			if err != nil {
				return nil, err
			}
		}
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func responseNode() parse.Node {
	return &parse.ActionNode{NodeType: parse.NodeAction, Pipe: &parse.PipeNode{NodeType: parse.NodePipe,
		Cmds: []*parse.CommandNode{{NodeType: parse.NodeCommand,
			Args: []parse.Node{&parse.FieldNode{NodeType: parse.NodeField, Ident: []string{"Response"}}}}}}}
}

// cutAfterResponse copies the tree and drops every node after the first {{ .Response }} field
// (legacy templates end the prompt there; the field itself is kept and prints "").
func cutAfterResponse(root *parse.ListNode) *parse.ListNode {
	cut := false
	var walk func(parse.Node) parse.Node
	walk = func(n parse.Node) parse.Node {
		if f, ok := n.(*parse.FieldNode); ok && contains(f.Ident, "Response") {
			cut = true
			return n
		}
		if cut {
			return nil
		}
		switch t := n.(type) {
		case *parse.ListNode:
			var kept []parse.Node
			for _, c := range t.Nodes {
				if k := walk(c); k != nil {
					kept = append(kept, k)
				}
			}
			t.Nodes = kept
			return t
		case *parse.IfNode:
			t.BranchNode = *walk(&t.BranchNode).(*parse.BranchNode)
		case *parse.WithNode:
			t.BranchNode = *walk(&t.BranchNode).(*parse.BranchNode)
		case *parse.RangeNode:
			t.BranchNode = *walk(&t.BranchNode).(*parse.BranchNode)
		case *parse.BranchNode:
			t.List = walk(t.List).(*parse.ListNode)
			if t.ElseList != nil {
				t.ElseList = walk(t.ElseList).(*parse.ListNode)
			}
		case *parse.ActionNode:
			p := walk(t.Pipe)
			if p == nil {
				return nil
			}
			t.Pipe = p.(*parse.PipeNode)
		case *parse.PipeNode:
			var cmds []*parse.CommandNode
			for _, c := range t.Cmds {
				var args []parse.Node
				for _, a := range c.Args {
					if k := walk(a); k != nil {
						args = append(args, k)
					}
				}
				if len(args) == 0 {
					return nil
				}
				c.Args = args
				cmds = append(cmds, c)
			}
			if len(cmds) == 0 {
				return nil
			}
			t.Cmds = cmds
		}
		return n
	}
	return walk(root.Copy()).(*parse.ListNode)
}

// ---------- rendering ----------

type renderer struct {
	tmpl      *template.Template
	root      *parse.ListNode // the main tree as parsed (the legacy path cuts it), without the depth actions
	vars      []string
	thinking  bool
	maxOutput int
	// toolTag and thinkOpen/thinkClose: parseTag and InferTags of the template as Ollama holds it (before
	// the harness's recursion-cap actions are added)
	toolTag, thinkOpen, thinkClose string
}

// ---------- recursion cap ----------

// maxTemplateDepth caps nested {{template}} calls (text/template's own cap, 100,000, takes over 100 MB).
const maxTemplateDepth = 1000

var templateDepth int

var depthFuncs = template.FuncMap{
	"harnessDepthEnter": func() (string, error) {
		templateDepth++
		if templateDepth > maxTemplateDepth {
			return "", fmt.Errorf("more than %d nested {{template}} calls (the harness's recursion cap)", maxTemplateDepth)
		}
		return "", nil
	},
	"harnessDepthLeave": func() string {
		templateDepth--
		return ""
	},
}

// capRecursion puts {{harnessDepthEnter}} before and {{harnessDepthLeave}} after every {{template}} call of
// every template of t (they print nothing); the output is unchanged.
func capRecursion(t *template.Template) error {
	helper, err := template.New("recursion cap").Funcs(depthFuncs).Parse("{{harnessDepthEnter}}{{harnessDepthLeave}}")
	if err != nil {
		return err
	}
	enter, leave := helper.Tree.Root.Nodes[0], helper.Tree.Root.Nodes[1]
	seen := map[*parse.ListNode]bool{}
	var wrap func(list *parse.ListNode)
	wrap = func(list *parse.ListNode) {
		if list == nil || seen[list] {
			return
		}
		seen[list] = true
		var nodes []parse.Node
		for _, n := range list.Nodes {
			switch x := n.(type) {
			case *parse.TemplateNode:
				nodes = append(nodes, enter, x, leave)
				continue
			case *parse.IfNode:
				wrap(x.List)
				wrap(x.ElseList)
			case *parse.RangeNode:
				wrap(x.List)
				wrap(x.ElseList)
			case *parse.WithNode:
				wrap(x.List)
				wrap(x.ElseList)
			}
			nodes = append(nodes, n)
		}
		list.Nodes = nodes
	}
	for _, tt := range append(t.Templates(), t) {
		if tt.Tree != nil {
			wrap(tt.Tree.Root)
		}
	}
	return nil
}

func newRenderer(src string) (*renderer, error) {
	t, err := template.New("").Option("missingkey=zero").Funcs(funcs).Funcs(depthFuncs).Parse(src)
	if err != nil {
		return nil, err
	}
	vars, err := templateVars(t)
	if err != nil {
		return nil, err
	}
	if !contains(vars, "messages") && !contains(vars, "response") {
		t.Tree.Root.Nodes = append(t.Tree.Root.Nodes, responseNode())
		if vars, err = templateVars(t); err != nil { // Ollama reads Vars() from the touched-up tree
			return nil, err
		}
	}
	open, close := inferTags(t)
	r := &renderer{tmpl: t, root: t.Tree.Root.Copy().(*parse.ListNode), vars: vars, thinking: open != "" && close != "",
		toolTag: parseTag(t), thinkOpen: open, thinkClose: close}
	if err := capRecursion(t); err != nil {
		return nil, err
	}
	return r, nil
}

func collate(msgs []inMessage) (string, []*inMessage) {
	var system []string
	var out []*inMessage
	for i := range msgs {
		if msgs[i].Role == "system" {
			system = append(system, msgs[i].Content)
		}
		if n := len(out); n > 0 && out[n-1].Role == msgs[i].Role && msgs[i].Role != "tool" {
			out[n-1].Content += "\n\n" + msgs[i].Content
		} else {
			out = append(out, &msgs[i])
		}
	}
	return strings.Join(system, "\n\n"), out
}

func templateMessages(msgs []*inMessage) ([]*templateMessage, error) {
	if msgs == nil {
		return nil, nil
	}
	out := make([]*templateMessage, len(msgs))
	for i, m := range msgs {
		var calls []templateToolCall
		for _, c := range m.ToolCalls {
			var args ordered[any]
			if err := json.Unmarshal([]byte(c.Function.Arguments), &args); err != nil {
				return nil, errors.New("invalid tool call arguments")
			}
			calls = append(calls, templateToolCall{ID: c.ID, Function: templateToolCallFunction{
				Index: c.Function.Index, Name: c.Function.Name, Arguments: templateArgs(args.toMap())}})
		}
		out[i] = &templateMessage{Role: m.Role, Content: m.Content, Thinking: m.Thinking, ToolCalls: calls,
			ToolName: m.ToolName, ToolCallID: m.ToolCallID}
	}
	return out, nil
}

func templateToolsOf(tools []inTool) templateTools {
	if tools == nil {
		return nil
	}
	out := make(templateTools, len(tools))
	for i, t := range tools {
		p := t.Function.Parameters
		out[i] = templateTool{Type: t.Type, Items: t.Items, Function: templateToolFunction{
			Name: t.Function.Name, Description: t.Function.Description,
			Parameters: templateToolFunctionParameters{Type: p.Type, Defs: p.Defs, Items: p.Items,
				Required: p.Required, Properties: templateProperties(p.Properties.toMap())}}}
	}
	return out
}

func thinkValues(v any) (bool, string, bool) {
	switch x := v.(type) {
	case nil:
		return false, "", false
	case bool:
		if x {
			return true, "medium", true
		}
		return false, "", true
	case string:
		on := x == "high" || x == "medium" || x == "low" || x == "max"
		return on, x, true
	}
	return false, "", true
}

func (r *renderer) render(req *request) (string, error) {
	think, level, isSet := thinkValues(req.Think)
	system, msgs := collate(req.Messages)
	b := cappedBuffer{max: r.maxOutput}
	if contains(r.vars, "messages") {
		tm, err := templateMessages(msgs)
		if err != nil {
			return "", err
		}
		err = r.tmpl.Execute(&b, map[string]any{"System": system, "Messages": tm, "Tools": templateToolsOf(req.Tools),
			"Response": "", "Think": think, "ThinkLevel": level, "IsThinkSet": isSet})
		return b.String(), err
	}
	// legacy path: one execution per (system, prompt, response) turn; tool messages are not rendered
	system = ""
	var prompt, response string
	vals := func() map[string]any {
		return map[string]any{"System": system, "Prompt": prompt, "Response": response, "Think": think,
			"ThinkLevel": level, "IsThinkSet": isSet}
	}
	flush := func() error {
		if err := r.tmpl.Execute(&b, vals()); err != nil {
			return err
		}
		system, prompt, response = "", "", ""
		return nil
	}
	for _, m := range msgs {
		switch m.Role {
		case "system":
			if prompt != "" || response != "" {
				if err := flush(); err != nil {
					return "", err
				}
			}
			system = m.Content
		case "user":
			if response != "" {
				if err := flush(); err != nil {
					return "", err
				}
			}
			prompt = m.Content
		case "assistant":
			response = m.Content
		}
	}
	tree := &parse.Tree{Root: cutAfterResponse(r.root)}
	// Ollama runs the cut tree in a fresh template: no custom functions, default missingkey
	last, err := template.New("").AddParseTree("", tree)
	if err != nil {
		return "", err
	}
	if err := last.Execute(&b, vals()); err != nil {
		return "", err
	}
	return b.String(), nil
}

func (r *renderer) safeRender(req *request) (text string, err error) {
	templateDepth = 0
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("template panicked: %v", p)
		}
	}()
	return r.render(req)
}

func main() {
	in := bufio.NewReaderSize(os.Stdin, 1<<20)
	out := bufio.NewWriterSize(os.Stdout, 1<<20)
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	send := func(r reply) {
		_ = enc.Encode(r)
	}
	readLine := func() ([]byte, error) {
		line, err := in.ReadBytes('\n')
		if err != nil && len(line) == 0 {
			return nil, err
		}
		return line, nil
	}

	first, err := readLine()
	if err != nil {
		return
	}
	var head struct {
		Template  string `json:"template"`
		MaxOutput int    `json:"max_output"`
		MaxMemory int64  `json:"max_memory"`
	}
	if err := json.Unmarshal(first, &head); err != nil {
		send(reply{Error: "bad first line: " + err.Error()})
		out.Flush()
		return
	}
	if head.MaxMemory > 0 {
		debug.SetMemoryLimit(head.MaxMemory)
	}
	r, err := newRenderer(head.Template)
	if err != nil {
		send(reply{Error: err.Error()})
		out.Flush()
		return
	}
	r.maxOutput = head.MaxOutput
	send(reply{OK: true, Vars: r.vars, Thinking: r.thinking})
	out.Flush()

	for {
		line, err := readLine()
		if err != nil {
			break
		}
		var req request
		if isOp(line) {
			var oreq opRequest
			if err := json.Unmarshal(line, &oreq); err != nil {
				_ = enc.Encode(opReply{Error: "bad request: " + err.Error()})
			} else {
				_ = enc.Encode(r.op(&oreq))
			}
		} else if err := json.Unmarshal(line, &req); err != nil {
			send(reply{Error: "bad request: " + err.Error()})
		} else if text, err := r.safeRender(&req); err != nil {
			send(reply{Error: err.Error(), Limit: limitOf(err)})
		} else {
			send(reply{Text: &text})
		}
		if in.Buffered() == 0 { // flush when the caller has sent everything it has so far
			out.Flush()
		}
	}
	out.Flush()
}

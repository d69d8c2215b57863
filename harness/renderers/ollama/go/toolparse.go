// Ollama's generic tool-call parser, re-expressed from github.com/ollama/ollama tools/template.go and
// tools/tools.go at commit fb30760 (tag v0.33.0-rc2): parseTag derives the tool-call prefix from the
// template's {{ if .ToolCalls }} block; Parser.Add finds the tag, then repeatedly the earliest (longest)
// name of a requested tool and the first balanced JSON object after it, taking its "arguments" or
// "parameters" (or a key equal to the tool name, searched recursively). Only the api package types are
// replaced (a tool is its name; arguments are a map); the control flow is Ollama's, statement for statement.
package main

import (
	"bytes"
	"encoding/json"
	"sort"
	"strings"
	"text/template"
	"text/template/parse"
)

// parseTag is tools/template.go parseTag: the first non-blank text in the {{ if .ToolCalls }} block, cut
// at "{", trimmed; "{" when there is none.
func parseTag(tmpl *template.Template) string {
	if tmpl == nil || tmpl.Tree == nil {
		return "{"
	}
	tc := findToolCallNode(tmpl.Tree.Root.Nodes)
	if tc == nil {
		return "{"
	}
	tn := findTextNode(tc.List.Nodes)
	if tn == nil {
		return "{"
	}
	tag := strings.ReplaceAll(string(tn.Text), "\r\n", "\n")
	tag, _, _ = strings.Cut(tag, "{")
	tag = strings.TrimSpace(tag)
	if tag == "" {
		tag = "{"
	}
	return tag
}

func isToolCallsNode(n *parse.IfNode) bool {
	for _, cmd := range n.Pipe.Cmds {
		for _, arg := range cmd.Args {
			if field, ok := arg.(*parse.FieldNode); ok && contains(field.Ident, "ToolCalls") {
				return true
			}
		}
	}
	return false
}

func findToolCallNode(nodes []parse.Node) *parse.IfNode {
	inBranch := func(list, elseList *parse.ListNode) *parse.IfNode {
		if r := findToolCallNode(list.Nodes); r != nil {
			return r
		}
		if elseList != nil {
			return findToolCallNode(elseList.Nodes)
		}
		return nil
	}
	for _, node := range nodes {
		var r *parse.IfNode
		switch n := node.(type) {
		case *parse.IfNode:
			if isToolCallsNode(n) {
				return n
			}
			r = inBranch(n.List, n.ElseList)
		case *parse.ListNode:
			r = findToolCallNode(n.Nodes)
		case *parse.RangeNode:
			r = inBranch(n.List, n.ElseList)
		case *parse.WithNode:
			r = inBranch(n.List, n.ElseList)
		}
		if r != nil {
			return r
		}
	}
	return nil
}

// findTextNode: depth first, stopping at the first action or after the first if/range/with.
func findTextNode(nodes []parse.Node) *parse.TextNode {
	inBranch := func(list, elseList *parse.ListNode) *parse.TextNode {
		if t := findTextNode(list.Nodes); t != nil {
			return t
		}
		if elseList != nil {
			return findTextNode(elseList.Nodes)
		}
		return nil
	}
	for _, node := range nodes {
		switch n := node.(type) {
		case *parse.TextNode:
			if len(bytes.TrimSpace(n.Text)) == 0 {
				continue
			}
			return n
		case *parse.IfNode:
			return inBranch(n.List, n.ElseList)
		case *parse.ListNode:
			if t := findTextNode(n.Nodes); t != nil {
				return t
			}
		case *parse.RangeNode:
			return inBranch(n.List, n.ElseList)
		case *parse.WithNode:
			return inBranch(n.List, n.ElseList)
		case *parse.ActionNode:
			return nil
		}
	}
	return nil
}

const (
	toolsLookingForTag = iota
	toolsToolCalling
	toolsDone
)

// parsedCall is api.ToolCall's function part: arguments keep the decoded map (Ollama inserts its keys in
// Go map order, i.e. unordered; the helper prints them sorted).
type parsedCall struct {
	Index     int            `json:"index"`
	Name      string         `json:"name"`
	Arguments map[string]any `json:"arguments"`
}

type toolParser struct {
	tag    string
	names  []string
	state  int
	buffer []byte
	n      int
}

// Add is tools.Parser.Add.
func (p *toolParser) Add(s string) (calls []parsedCall, content string) {
	if p.state == toolsDone {
		return nil, s
	}
	p.buffer = append(p.buffer, s...)
	if p.state == toolsLookingForTag {
		i, found := p.findTag()
		if i == -1 {
			content = string(p.buffer)
			p.buffer = []byte{}
		} else {
			content = string(p.buffer[:i])
			p.buffer = p.buffer[i:]
		}
		if p.tag == "{" || p.tag == "[" {
			if strings.TrimSpace(content) != "" {
				p.state = toolsDone
				return nil, content + string(p.buffer)
			}
		}
		if !found {
			return nil, content
		}
		p.state = toolsToolCalling
	}
	for {
		call := p.parseToolCall()
		if call == nil {
			break
		}
		calls = append(calls, *call)
	}
	if p.done() {
		p.state = toolsDone
		content = string(p.buffer)
		p.buffer = []byte{}
	}
	return calls, content
}

func (p *toolParser) findTag() (int, bool) {
	if i := bytes.Index(p.buffer, []byte(p.tag)); i > -1 {
		return i, true
	}
	for i := min(len(p.buffer), len(p.tag)); i > 0; i-- {
		if bytes.HasSuffix(p.buffer, []byte(p.tag[:i])) {
			return len(p.buffer) - i, false
		}
	}
	return -1, false
}

func (p *toolParser) parseToolCall() *parsedCall {
	name, end := findTool(p.names, p.buffer)
	if name == "" {
		return nil
	}
	args, i := findArguments(name, p.buffer)
	if args == nil {
		return nil
	}
	if i > end {
		end = i
	}
	tc := &parsedCall{Index: p.n, Name: name, Arguments: args}
	p.n++
	p.buffer = p.buffer[end:]
	return tc
}

// findTool: none while the buffer ends in a proper prefix of a tool name; else the earliest occurrence of
// a tool name, the longest at equal positions. An empty name never matches (Ollama's tools have names).
func findTool(names []string, buf []byte) (string, int) {
	if len(buf) == 0 {
		return "", 0
	}
	longest := 0
	for _, n := range names {
		longest = max(longest, len(n))
	}
	for i := 1; i <= min(len(buf), longest); i++ {
		tail := buf[len(buf)-i:]
		for _, n := range names {
			if len(tail) < len(n) && bytes.HasPrefix([]byte(n), tail) {
				return "", 0
			}
		}
	}
	found, start, end := "", -1, -1
	for _, n := range names {
		pos := bytes.Index(buf, []byte(n))
		if pos == -1 {
			continue
		}
		if start != -1 && (pos > start || (pos == start && len(n) <= len(found))) {
			continue
		}
		found, start, end = n, pos, pos+len(n)
	}
	if start == -1 {
		return "", 0
	}
	return found, end
}

// findArguments: the first balanced, valid JSON object (string-aware brace count); its "arguments" or
// "parameters" when it has "name" (an object, or a string holding one), else a key named after the tool,
// else the same search in nested objects and arrays, else the object itself. Returns the index of its
// closing brace (not one past it: the parser keeps that brace in its buffer).
func findArguments(tool string, buffer []byte) (map[string]any, int) {
	if len(buffer) == 0 {
		return nil, 0
	}
	start, braces := -1, 0
	inString, escaped := false, false
	for i, c := range buffer {
		if escaped {
			escaped = false
			continue
		}
		if c == '\\' {
			escaped = true
			continue
		}
		if c == '"' {
			inString = !inString
			continue
		}
		if inString {
			continue
		}
		if c == '{' {
			if braces == 0 {
				start = i
			}
			braces++
		} else if c == '}' {
			braces--
			if braces == 0 && start != -1 {
				var data map[string]any
				if err := json.Unmarshal(buffer[start:i+1], &data); err != nil {
					start = -1
					continue
				}
				if args, found := findObject(tool, data); found {
					return args, i
				}
				return data, i
			}
			if braces < 0 {
				braces = 0
			}
		}
	}
	return nil, 0
}

func findMap(name string, obj map[string]any) (map[string]any, bool) {
	if args, ok := obj[name].(map[string]any); ok {
		return args, true
	}
	if s, ok := obj[name].(string); ok {
		var data map[string]any
		if err := json.Unmarshal([]byte(s), &data); err == nil {
			return data, ok
		}
	}
	return nil, false
}

// findObject is findArguments' recursive closure. Ollama ranges over a Go map here, so which nested
// object wins when several qualify is random in Ollama; this port visits keys in sorted order.
func findObject(tool string, obj map[string]any) (map[string]any, bool) {
	if _, hasName := obj["name"]; hasName {
		if args, ok := findMap("arguments", obj); ok {
			return args, true
		}
		if args, ok := findMap("parameters", obj); ok {
			return args, true
		}
		return nil, true
	}
	if args, ok := findMap(tool, obj); ok {
		return args, true
	}
	for _, k := range sortedKeys(obj) {
		switch child := obj[k].(type) {
		case map[string]any:
			if r, found := findObject(tool, child); found {
				return r, true
			}
		case []any:
			for _, item := range child {
				if co, ok := item.(map[string]any); ok {
					if r, found := findObject(tool, co); found {
						return r, true
					}
				}
			}
		}
	}
	return nil, false
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// done: only for "{" / "[" tags, true once the buffer holds a balanced object/list.
func (p *toolParser) done() bool {
	var open, close byte
	switch p.tag {
	case "{":
		open, close = '{', '}'
	case "[":
		open, close = '[', ']'
	default:
		return false
	}
	count := 0
	inString, escaped := false, false
	for _, c := range p.buffer {
		if escaped {
			escaped = false
			continue
		}
		if c == '\\' {
			escaped = true
			continue
		}
		if c == '"' {
			inString = !inString
			continue
		}
		if inString {
			continue
		}
		if c == open {
			count++
		} else if c == close {
			count--
			if count == 0 {
				return true
			}
		}
	}
	return false
}

// Content: what is flushed at the end: the buffer for "{"/"[" tags when no call was parsed, else "".
func (p *toolParser) Content() string {
	if p.n > 0 {
		return ""
	}
	if p.tag == "{" || p.tag == "[" {
		return string(p.buffer)
	}
	return ""
}

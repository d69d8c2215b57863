// Requests with an "op" run Ollama's output parsing (toolparse.go, thinkparse.go) for the loaded template.
//
// {"op": "chat", "chunks": [...], "tools": [names], "think": bool, "prompt": "..."} answers what a
// non-streaming /api/chat returns for a model that streamed those chunks, as server/routes.go ChatHandler
// and writeChatResponse at fb30760 do for a Modelfile without a built-in PARSER: a thinking parser when
// think is on and InferTags finds both tags (pre-fed the opening tag when the trimmed prompt ends with
// it); a tool parser when the request has tools; per chunk, content returned by the tool parser wins over
// calls returned with it; a final empty chunk with done=true flushes Parser.Content(). Answer:
// {"calls": [{"index", "name", "arguments": JSON text}], "content", "thinking", "tag", "open", "close"}.
// Arguments print as Go's encoding/json prints a map: sorted keys, numbers as float64, <>& escaped.
//
// The other ops expose single functions for Ollama's own unit tests: parse_tag, infer_tags, find_tag,
// find_arguments, done, content (a Parser with tag/buffer/n), tool_steps (Add per input), think_steps.
package main

import (
	"encoding/json"
	"strings"
)

type opRequest struct {
	Op     string   `json:"op"`
	Chunks []string `json:"chunks"`
	Tools  []string `json:"tools"`
	Think  bool     `json:"think"`
	Prompt string   `json:"prompt"`
	Tag    string   `json:"tag"`
	Buffer string   `json:"buffer"`
	N      int      `json:"n"`
	Tool   string   `json:"tool"`
	Open   string   `json:"open"`
	Close  string   `json:"close"`
}

type outCall struct {
	Index     int    `json:"index"`
	Name      string `json:"name"`
	Arguments string `json:"arguments"` // the JSON text
}

type opReply struct {
	Error    string    `json:"error,omitempty"`
	Calls    []outCall `json:"calls"`
	Content  string    `json:"content"`
	Thinking string    `json:"thinking"`
	Tag      string    `json:"tag,omitempty"`
	Open     string    `json:"open,omitempty"`
	Close    string    `json:"close,omitempty"`
	Index    int       `json:"i"`
	Found    bool      `json:"found"`
	Args     any       `json:"arguments,omitempty"`
	Steps    [][]any   `json:"steps,omitempty"`
}

func isOp(line []byte) bool {
	var probe struct {
		Op string `json:"op"`
	}
	return json.Unmarshal(line, &probe) == nil && probe.Op != ""
}

func encodeCalls(calls []parsedCall) []outCall {
	out := make([]outCall, 0, len(calls))
	for _, c := range calls {
		args := c.Arguments
		b, _ := json.Marshal(args) // api.ToolCallFunctionArguments marshals its map; nil prints {}
		if args == nil {
			b = []byte("{}")
		}
		out = append(out, outCall{Index: c.Index, Name: c.Name, Arguments: string(b)})
	}
	return out
}

// chat is ChatHandler's loop over the runner's responses plus writeChatResponse's accumulation.
func (r *renderer) chat(req *opRequest) opReply {
	open, close := r.thinkOpen, r.thinkClose
	var tp *thinkParser
	if req.Think && open != "" && close != "" {
		tp = &thinkParser{openingTag: open, closingTag: close}
		if strings.HasSuffix(strings.TrimSpace(req.Prompt), open) {
			tp.AddContent(open)
		}
	}
	var toolp *toolParser
	if len(req.Tools) > 0 {
		toolp = &toolParser{tag: r.toolTag, names: req.Tools}
	}
	var thinking, content strings.Builder
	var calls []parsedCall
	chunks := append(append([]string{}, req.Chunks...), "")
	for i, chunk := range chunks {
		done := i == len(chunks)-1
		msgThinking, msgContent := "", chunk
		var msgCalls []parsedCall
		if tp != nil {
			th, rest := tp.AddContent(chunk)
			if th == "" && rest == "" && !done {
				continue
			}
			msgThinking, msgContent = th, rest
		}
		if toolp != nil {
			got, c := toolp.Add(msgContent)
			if len(c) > 0 {
				msgContent = c
			} else if len(got) > 0 {
				msgCalls, msgContent = got, ""
			} else if msgThinking != "" {
				// sent as it is (routes.go falls through)
			} else {
				if !done {
					continue
				}
				msgContent = toolp.Content()
			}
		}
		thinking.WriteString(msgThinking)
		content.WriteString(msgContent)
		calls = append(calls, msgCalls...)
	}
	rep := opReply{Calls: encodeCalls(calls), Content: content.String(), Thinking: thinking.String(), Open: open,
		Close: close}
	if toolp != nil {
		rep.Tag = toolp.tag
	}
	return rep
}

func (r *renderer) op(req *opRequest) opReply {
	switch req.Op {
	case "chat":
		return r.chat(req)
	case "parse_tag":
		return opReply{Tag: r.toolTag}
	case "infer_tags":
		return opReply{Open: r.thinkOpen, Close: r.thinkClose}
	case "find_tag":
		p := &toolParser{tag: req.Tag, buffer: []byte(req.Buffer)}
		i, found := p.findTag()
		return opReply{Index: i, Found: found}
	case "done":
		p := &toolParser{tag: req.Tag, buffer: []byte(req.Buffer)}
		return opReply{Found: p.done()}
	case "content":
		p := &toolParser{tag: req.Tag, buffer: []byte(req.Buffer), n: req.N}
		return opReply{Content: p.Content()}
	case "find_arguments":
		args, i := findArguments(req.Tool, []byte(req.Buffer))
		if args == nil {
			return opReply{Index: i}
		}
		return opReply{Args: args, Index: i, Found: true}
	case "tool_steps":
		p := &toolParser{tag: r.toolTag, names: req.Tools}
		var calls []parsedCall
		var content strings.Builder
		for _, in := range req.Chunks {
			got, c := p.Add(in)
			calls = append(calls, got...)
			content.WriteString(c)
		}
		return opReply{Calls: encodeCalls(calls), Content: content.String(), Tag: p.tag}
	case "think_steps":
		p := &thinkParser{openingTag: req.Open, closingTag: req.Close}
		rep := opReply{}
		for _, in := range req.Chunks {
			th, c := p.AddContent(in)
			rep.Steps = append(rep.Steps, []any{th, c, p.state})
		}
		return rep
	}
	return opReply{Error: "unknown op " + req.Op}
}

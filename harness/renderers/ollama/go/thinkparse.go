// Ollama's thinking support, re-expressed from github.com/ollama/ollama thinking/template.go (InferTags)
// and thinking/parser.go (Parser.AddContent) at commit fb30760 (tag v0.33.0-rc2), statement for statement.
package main

import (
	"strings"
	"text/template"
	"text/template/parse"
	"unicode"
)

func templateVisit(n parse.Node, enterFn func(parse.Node) bool, exitFn func(parse.Node)) {
	if n == nil || !enterFn(n) {
		return
	}
	switch x := n.(type) {
	case *parse.ListNode:
		for _, c := range x.Nodes {
			templateVisit(c, enterFn, exitFn)
		}
	case *parse.BranchNode:
		if x.Pipe != nil {
			templateVisit(x.Pipe, enterFn, exitFn)
		}
		if x.List != nil {
			templateVisit(x.List, enterFn, exitFn)
		}
		if x.ElseList != nil {
			templateVisit(x.ElseList, enterFn, exitFn)
		}
	case *parse.ActionNode:
		templateVisit(x.Pipe, enterFn, exitFn)
	case *parse.WithNode:
		templateVisit(&x.BranchNode, enterFn, exitFn)
	case *parse.RangeNode:
		templateVisit(&x.BranchNode, enterFn, exitFn)
	case *parse.IfNode:
		templateVisit(&x.BranchNode, enterFn, exitFn)
	case *parse.TemplateNode:
		templateVisit(x.Pipe, enterFn, exitFn)
	case *parse.PipeNode:
		for _, c := range x.Cmds {
			templateVisit(c, enterFn, exitFn)
		}
	case *parse.CommandNode:
		for _, a := range x.Args {
			templateVisit(a, enterFn, exitFn)
		}
	}
	if exitFn != nil {
		exitFn(n)
	}
}

// inferTags: for each {{ .Thinking }} whose nearest enclosing range iterates .Messages, the first and last
// text nodes (trimmed) of its nearest enclosing list; the last such field wins.
func inferTags(t *template.Template) (string, string) {
	var ancestors []parse.Node
	opening, closing := "", ""
	enter := func(n parse.Node) bool {
		ancestors = append(ancestors, n)
		x, ok := n.(*parse.FieldNode)
		if !ok || len(x.Ident) == 0 || x.Ident[0] != "Thinking" {
			return true
		}
		var rng *parse.RangeNode
		for i := len(ancestors) - 1; i >= 0; i-- {
			if r, ok := ancestors[i].(*parse.RangeNode); ok {
				rng = r
				break
			}
		}
		if rng == nil || !rangeUsesField(rng, "Messages") {
			return true
		}
		for i := len(ancestors) - 1; i >= 0; i-- {
			if l, ok := ancestors[i].(*parse.ListNode); ok {
				if tn, ok := l.Nodes[0].(*parse.TextNode); ok {
					opening = strings.TrimSpace(tn.String())
				}
				if tn, ok := l.Nodes[len(l.Nodes)-1].(*parse.TextNode); ok {
					closing = strings.TrimSpace(tn.String())
				}
				break
			}
		}
		return true
	}
	exit := func(parse.Node) { ancestors = ancestors[:len(ancestors)-1] }
	templateVisit(t.Root, enter, exit)
	return opening, closing
}

func rangeUsesField(r *parse.RangeNode, field string) bool {
	found := false
	templateVisit(r.BranchNode.Pipe, func(n parse.Node) bool {
		if x, ok := n.(*parse.FieldNode); ok && x.Ident[0] == field {
			found = true
		}
		return true
	}, nil)
	return found
}

const (
	thinkLookingForOpening = iota
	thinkStartedEatingWhitespace
	thinkThinking
	thinkDoneEatingWhitespace
	thinkDone
)

type thinkParser struct {
	state      int
	openingTag string
	closingTag string
	acc        strings.Builder
}

// AddContent returns the thinking and the content that can be sent now (it buffers a possible tag).
func (s *thinkParser) AddContent(content string) (string, string) {
	s.acc.WriteString(content)
	var th, rest strings.Builder
	for more := true; more; {
		var t, r string
		t, r, more = s.eat()
		th.WriteString(t)
		rest.WriteString(r)
	}
	return th.String(), rest.String()
}

func (s *thinkParser) eat() (string, string, bool) {
	switch s.state {
	case thinkLookingForOpening:
		trimmed := strings.TrimLeftFunc(s.acc.String(), unicode.IsSpace)
		if strings.HasPrefix(trimmed, s.openingTag) {
			after := strings.Join(strings.Split(trimmed, s.openingTag)[1:], s.openingTag)
			after = strings.TrimLeftFunc(after, unicode.IsSpace)
			s.acc.Reset()
			s.acc.WriteString(after)
			if after == "" {
				s.state = thinkStartedEatingWhitespace
			} else {
				s.state = thinkThinking
			}
			return "", "", true
		} else if strings.HasPrefix(s.openingTag, trimmed) {
			return "", "", false
		} else if trimmed == "" {
			return "", "", false
		}
		s.state = thinkDone
		untrimmed := s.acc.String()
		s.acc.Reset()
		return "", untrimmed, false
	case thinkStartedEatingWhitespace:
		trimmed := strings.TrimLeftFunc(s.acc.String(), unicode.IsSpace)
		s.acc.Reset()
		if trimmed == "" {
			return "", "", false
		}
		s.state = thinkThinking
		s.acc.WriteString(trimmed)
		return "", "", true
	case thinkThinking:
		acc := s.acc.String()
		if strings.Contains(acc, s.closingTag) {
			split := strings.Split(acc, s.closingTag)
			thinking := split[0]
			remaining := strings.TrimLeftFunc(strings.Join(split[1:], s.closingTag), unicode.IsSpace)
			s.acc.Reset()
			if remaining == "" {
				s.state = thinkDoneEatingWhitespace
			} else {
				s.state = thinkDone
			}
			return thinking, remaining, false
		} else if n := overlap(acc, s.closingTag); n > 0 {
			s.acc.Reset()
			s.acc.WriteString(acc[len(acc)-n:])
			return acc[:len(acc)-n], "", false
		}
		s.acc.Reset()
		return acc, "", false
	case thinkDoneEatingWhitespace:
		trimmed := strings.TrimLeftFunc(s.acc.String(), unicode.IsSpace)
		s.acc.Reset()
		if trimmed != "" {
			s.state = thinkDone
		}
		return "", trimmed, false
	case thinkDone:
		acc := s.acc.String()
		s.acc.Reset()
		return "", acc, false
	}
	panic("unknown thinking state")
}

func overlap(s, delim string) int {
	for i := min(len(delim), len(s)); i > 0; i-- {
		if strings.HasSuffix(s, delim[:i]) {
			return i
		}
	}
	return 0
}

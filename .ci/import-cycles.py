# Import cycles among the modules of drive-flow/src (non-test code; comments ignored):
# no module may import a module that imports it back. `python3 .ci/import-cycles.py`.
import re, os, sys
root=sys.argv[1] if len(sys.argv)>1 else 'drive-flow/src'
mods={}
for dp,_,fs in os.walk(root):
    for f in fs:
        if not f.endswith('.rs'): continue
        p=os.path.join(dp,f); rel=p[len(root)+1:-3]
        parts=rel.split('/')
        if parts[-1] in ('mod','lib'): parts=parts[:-1]
        if parts and parts[-1]=='tests': continue
        src=open(p).read()
        i=src.find('#[cfg(test)]\nmod tests')
        if i>=0: src=src[:i]
        mods['::'.join(parts)]='\n'.join(l for l in src.split('\n') if not l.strip().startswith('//'))
names=set(mods)
def resolve(path):
    segs=path.split('::')
    for i in range(len(segs),0,-1):
        c='::'.join(segs[:i])
        if c in names: return c
edges={}
for m,src in mods.items():
    deps=set()
    for mm in re.finditer(r'crate::([a-z_]+(?:::[a-z_]+)*)', src):
        t=resolve(mm.group(1))
        if t and t!=m and not m.startswith(t+'::') and not t.startswith(m+'::'): deps.add(t)
    edges[m]=deps
idx={}; low={}; st=[]; on=set(); sccs=[]; c=[0]
sys.setrecursionlimit(10000)
def sc(v):
    idx[v]=low[v]=c[0]; c[0]+=1; st.append(v); on.add(v)
    for w in edges.get(v,()):
        if w not in idx: sc(w); low[v]=min(low[v],low[w])
        elif w in on: low[v]=min(low[v],idx[w])
    if low[v]==idx[v]:
        comp=[]
        while True:
            w=st.pop(); on.discard(w); comp.append(w)
            if w==v: break
        if len(comp)>1: sccs.append(comp)
for v in edges:
    if v not in idx: sc(v)
print("import cycles:", sccs if sccs else "none")
sys.exit(1 if sccs else 0)

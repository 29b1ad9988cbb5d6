
2
xPlaceholder*
dtype0*
shape
:

callf0x

yRelucall*
T0Ý
H

f0
a
out
c0f1a
c1f1c0:out:0"
outc1:out:0
H

f1
a
out
c0f0a
c1f0c0:out:0"
outc1:out:0
G

f2
a
out
r0Relua*
T0"
outr0:activations:0
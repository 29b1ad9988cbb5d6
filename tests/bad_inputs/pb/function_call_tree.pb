
2
xPlaceholder*
dtype0*
shape
:

callf0x

yRelucall*
T0²
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
c0f2a
c1f2c0:out:0"
outc1:out:0
H

f2
a
out
c0f3a
c1f3c0:out:0"
outc1:out:0
H

f3
a
out
c0f4a
c1f4c0:out:0"
outc1:out:0
H

f4
a
out
c0f5a
c1f5c0:out:0"
outc1:out:0
H

f5
a
out
c0f6a
c1f6c0:out:0"
outc1:out:0
H

f6
a
out
c0f7a
c1f7c0:out:0"
outc1:out:0
H

f7
a
out
c0f8a
c1f8c0:out:0"
outc1:out:0
H

f8
a
out
c0f9a
c1f9c0:out:0"
outc1:out:0
J

f9
a
out
c0f10a
c1f10c0:out:0"
outc1:out:0
K

f10
a
out
c0f11a
c1f11c0:out:0"
outc1:out:0
K

f11
a
out
c0f12a
c1f12c0:out:0"
outc1:out:0
K

f12
a
out
c0f13a
c1f13c0:out:0"
outc1:out:0
K

f13
a
out
c0f14a
c1f14c0:out:0"
outc1:out:0
K

f14
a
out
c0f15a
c1f15c0:out:0"
outc1:out:0
K

f15
a
out
c0f16a
c1f16c0:out:0"
outc1:out:0
K

f16
a
out
c0f17a
c1f17c0:out:0"
outc1:out:0
K

f17
a
out
c0f18a
c1f18c0:out:0"
outc1:out:0
K

f18
a
out
c0f19a
c1f19c0:out:0"
outc1:out:0
K

f19
a
out
c0f20a
c1f20c0:out:0"
outc1:out:0
H

f20
a
out
r0Relua*
T0"
outr0:activations:0
#pragma once
double sqrt(double); float sqrtf(float); double exp(double); double log(double); double pow(double,double);
